"""The product policy: the written definition of a good (member, job) match, versioned.

The policy is a Markdown file with YAML front matter (``version``: a semantic version, ``title``).
Every label made under it records :attr:`Policy.version` — the semantic version plus the first 12
hex digits of the SHA-256 of the file's bytes — so an edit that forgets to bump the version still
yields a different label version, and labels from different policy texts never mix silently.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from jobs.runtime.errors import PolicyrankError

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "conf" / "policy" / "job_match.md"

# https://semver.org/#is-there-a-suggested-regular-expression-regex-to-check-a-semver-string
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


@dataclass(frozen=True)
class Policy:
    """One policy file as loaded: its full text (front matter included), semantic version and
    the SHA-256 of its bytes."""

    path: Path
    text: str
    semver: str
    content_hash: str
    title: str = ""

    @property
    def version(self) -> str:
        """``<semver>+<first 12 hex digits of the content hash>``, e.g. ``1.0.0+3f9a0c1b2d4e``."""
        return f"{self.semver}+{self.content_hash[:12]}"

    @property
    def body(self) -> str:
        """The Markdown after the front matter: what a judge prompt embeds."""
        match = _FRONT_MATTER.match(self.text)
        return (self.text[match.end() :] if match else self.text).strip() + "\n"


def load_policy(path: str | Path | None = None) -> Policy:
    """Read the policy at ``path`` (default ``conf/policy/job_match.md``); one-line
    :class:`PolicyrankError` when the file is missing, has no front matter, or its ``version`` is
    not a semantic version."""
    path = Path(path) if path is not None else DEFAULT_POLICY
    if not path.is_file():
        raise PolicyrankError(f"policy file not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PolicyrankError(f"{path}: policy is not UTF-8 text ({err.reason})") from None
    match = _FRONT_MATTER.match(text)
    if not match:
        raise PolicyrankError(
            f"{path}: policy must start with YAML front matter between '---' lines"
        )
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as err:
        problem = " ".join(str(getattr(err, "problem", "") or "invalid YAML").split())
        raise PolicyrankError(f"{path}: policy front matter is not valid YAML: {problem}") from None
    if not isinstance(meta, dict):
        raise PolicyrankError(f"{path}: policy front matter must be a mapping")
    version = meta.get("version")
    # YAML reads ``version: 1.0`` as a float; only a string can be a semantic version.
    if not isinstance(version, str) or not SEMVER.match(version):
        raise PolicyrankError(
            f"{path}: policy version {version!r} is not a semantic version (e.g. 1.0.0)"
        )
    title = meta.get("title")
    return Policy(
        path=path,
        text=text,
        semver=version,
        content_hash=hashlib.sha256(data).hexdigest(),
        title=str(title) if title is not None else "",
    )
