"""The simulated world's vocabulary: occupations, their titles, skills and their other names,
places, and the sentences profiles and posts are written with (docs/world.md says why).

Only the simulator reads these tables. Production code sees the rendered text, never a table
that maps a title to an occupation or an alias to its skill.
"""

from __future__ import annotations

# occupation -> (family, canonical title, skill pool). Adjacent occupations share a family.
# fmt: off
OCCUPATIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "data_engineer": ("data", "Data Engineer", (
        "Spark", "SQL", "Python", "Airflow", "Kafka", "Scala", "dbt", "Delta Lake",)),
    "data_scientist": ("data", "Data Scientist", (
        "Python", "Statistics", "scikit-learn", "SQL", "A/B Testing", "R", "Pandas",
        "Causal Inference",)),
    "ml_engineer": ("data", "Machine Learning Engineer", (
        "PyTorch", "Python", "MLOps", "Kubernetes", "Transformers", "Model Serving", "CUDA",
        "Spark",)),
    "analytics_engineer": ("data", "Analytics Engineer", (
        "dbt", "SQL", "Looker", "Data Modeling", "Snowflake", "Python", "Tableau", "BigQuery",)),
    "backend_engineer": ("software", "Backend Engineer", (
        "Java", "Go", "PostgreSQL", "Microservices", "gRPC", "Kotlin", "Redis", "REST APIs",)),
    "frontend_engineer": ("software", "Frontend Engineer", (
        "TypeScript", "React", "CSS", "Next.js", "Accessibility", "GraphQL", "Webpack", "Figma",)),
    "mobile_engineer": ("software", "Mobile Engineer", (
        "Swift", "Kotlin", "iOS", "Android", "Jetpack Compose", "SwiftUI", "Firebase",
        "REST APIs",)),
    "sre": ("software", "Site Reliability Engineer", (
        "Kubernetes", "Terraform", "AWS", "Prometheus", "Linux", "Go", "Incident Response",
        "CI/CD",)),
    "product_manager": ("product", "Product Manager", (
        "Roadmapping", "User Research", "A/B Testing", "Stakeholder Management", "SQL",
        "Product Analytics", "Agile", "Pricing",)),
    "ux_designer": ("product", "UX Designer", (
        "Figma", "User Research", "Prototyping", "Interaction Design", "Accessibility",
        "Design Systems", "Usability Testing", "Sketch",)),
    "account_executive": ("sales", "Account Executive", (
        "Salesforce", "Negotiation", "Enterprise Sales", "Pipeline Management", "SaaS",
        "Forecasting", "Cold Calling", "Contract Management",)),
    "sales_development": ("sales", "Sales Development Representative", (
        "Cold Calling", "Salesforce", "Lead Generation", "Outreach", "HubSpot", "Prospecting",
        "CRM", "Negotiation",)),
    "growth_marketer": ("marketing", "Growth Marketer", (
        "SEO", "Google Ads", "Marketing Analytics", "A/B Testing", "HubSpot",
        "Lifecycle Marketing", "Copywriting", "Paid Social",)),
    "content_marketer": ("marketing", "Content Marketing Manager", (
        "Copywriting", "SEO", "Content Strategy", "Editing", "WordPress", "Social Media",
        "Brand Voice", "Storytelling",)),
    "financial_analyst": ("finance", "Financial Analyst", (
        "Excel", "Financial Modeling", "FP&A", "Forecasting", "SQL", "Valuation", "Budgeting",
        "PowerPoint",)),
    "accountant": ("finance", "Accountant", (
        "GAAP", "IFRS", "Excel", "Audit", "Tax", "Reconciliation", "SAP", "Budgeting",)),
    "registered_nurse": ("health", "Registered Nurse", (
        "Patient Care", "BLS", "Medication Administration", "Triage", "ICU", "EHR", "Wound Care",
        "Pediatrics",)),
    "pharmacist": ("health", "Pharmacist", (
        "Pharmacology", "Medication Review", "Compounding", "Patient Counseling", "EHR",
        "Clinical Trials", "Regulatory Compliance", "Inventory Management",)),
    "supply_chain_analyst": ("operations", "Supply Chain Analyst", (
        "Logistics", "Demand Planning", "Excel", "SAP", "Inventory Management", "SQL",
        "Procurement", "Lean",)),
    "operations_manager": ("operations", "Operations Manager", (
        "Lean", "Process Improvement", "Budgeting", "Team Leadership", "Logistics", "Six Sigma",
        "Vendor Management", "KPIs",)),
}

# Other titles people and posts use for the occupation; several are shared between occupations
# ("Software Engineer", "Data Analyst", "Marketing Manager"), and "Staff" in "Staff Nurse" or
# "Staff Accountant" is not a level.
TITLE_VARIANTS: dict[str, tuple[str, ...]] = {
    "data_engineer": ("Data Platform Engineer", "ETL Developer", "Big Data Engineer"),
    "data_scientist": ("Applied Scientist", "Data Analyst", "Quantitative Analyst"),
    "ml_engineer": ("ML Engineer", "AI Engineer", "MLOps Engineer"),
    "analytics_engineer": ("BI Developer", "Data Analyst", "Analytics Developer"),
    "backend_engineer": ("Software Engineer", "Server-side Developer", "Java Developer"),
    "frontend_engineer": ("Software Engineer", "UI Developer", "React Developer"),
    "mobile_engineer": ("Software Engineer", "iOS Developer", "Android Developer"),
    "sre": ("SRE", "DevOps Engineer", "Platform Engineer"),
    "product_manager": ("Product Owner", "PM", "Technical Product Manager"),
    "ux_designer": ("Product Designer", "UI/UX Designer", "Interaction Designer"),
    "account_executive": ("Sales Executive", "Account Manager", "Enterprise Account Executive"),
    "sales_development": ("SDR", "Business Development Representative", "BDR"),
    "growth_marketer": ("Digital Marketing Manager", "Performance Marketer", "Marketing Manager"),
    "content_marketer": ("Content Strategist", "Copywriter", "Marketing Manager"),
    "financial_analyst": ("FP&A Analyst", "Finance Analyst", "Business Analyst, Finance"),
    "accountant": ("Staff Accountant", "CPA", "Chartered Accountant"),
    "registered_nurse": ("RN", "Staff Nurse", "ICU Nurse"),
    "pharmacist": ("Clinical Pharmacist", "PharmD", "Hospital Pharmacist"),
    "supply_chain_analyst": ("Logistics Analyst", "Demand Planner", "Supply Chain Planner"),
    "operations_manager": ("Ops Manager", "Plant Manager", "Operations Lead"),
}

# What the work is, in the member's own words (every summary says it) and in a post.
WORK: dict[str, tuple[str, str]] = {
    "data_engineer": ("I build and run batch and streaming data pipelines",
                      "build and run our data pipelines and lakehouse"),
    "data_scientist": ("I turn data into decisions with statistics and experiments",
                       "design experiments and models that drive product decisions"),
    "ml_engineer": ("I train and ship machine learning models to production",
                    "train, deploy and monitor our machine learning models"),
    "analytics_engineer": ("I model data for analysts and keep dashboards trustworthy",
                           "own the data models behind our dashboards and reports"),
    "backend_engineer": ("I build server-side services and APIs",
                         "build the services and APIs behind our product"),
    "frontend_engineer": ("I build web user interfaces",
                          "build the web interfaces our customers use every day"),
    "mobile_engineer": ("I build native mobile apps",
                        "build our iOS and Android apps"),
    "sre": ("I keep production systems reliable and automate infrastructure",
            "keep our platform reliable, automate infrastructure and run on-call"),
    "product_manager": ("I decide what gets built and why, with engineering and design",
                        "own the roadmap of a product area"),
    "ux_designer": ("I design how products look, feel and work for their users",
                    "design flows and interfaces from research to prototype"),
    "account_executive": ("I close new business with enterprise customers",
                          "close new enterprise business and manage deals end to end"),
    "sales_development": ("I book first meetings with prospects for the sales team",
                          "open conversations with prospects and book meetings"),
    "growth_marketer": ("I grow user acquisition with paid and organic channels",
                        "grow acquisition across paid and organic channels"),
    "content_marketer": ("I write and plan content that brings readers and leads",
                         "plan and write the content that brings us readers and leads"),
    "financial_analyst": ("I build forecasts and models for finance decisions",
                          "build forecasts, budgets and models for the business"),
    "accountant": ("I keep the books, close the month and prepare audits",
                   "own the monthly close, reconciliations and the audit"),
    "registered_nurse": ("I care for patients on a hospital ward",
                         "care for patients on a busy hospital ward"),
    "pharmacist": ("I review medication and counsel patients",
                   "review prescriptions and counsel patients"),
    "supply_chain_analyst": ("I plan demand and inventory across our supply chain",
                             "plan demand, stock and suppliers across the supply chain"),
    "operations_manager": ("I run operations teams and improve how work gets done",
                           "lead an operations team and improve our processes"),
}

# canonical skill -> other names for the same thing (abbreviations, vendor or product names,
# spelling variants). A skill without an entry is only ever written one way.
SKILL_ALIASES: dict[str, tuple[str, ...]] = {
    "Spark": ("Apache Spark", "PySpark"), "Airflow": ("Apache Airflow",),
    "Kafka": ("Apache Kafka",), "Delta Lake": ("Delta tables",), "Scala": ("Scala 2",),
    "dbt": ("data build tool",), "Python": ("Python 3",), "R": ("R programming",),
    "Statistics": ("Statistical Modeling", "Stats"), "scikit-learn": ("sklearn", "Scikit Learn"),
    "A/B Testing": ("Experimentation", "Split Testing"), "Pandas": ("pandas DataFrames",),
    "Causal Inference": ("Causal Modeling",), "PyTorch": ("Torch",),
    "MLOps": ("ML Ops", "Machine Learning Operations"), "Kubernetes": ("k8s", "K8s"),
    "Transformers": ("Hugging Face",), "Model Serving": ("Model Deployment",),
    "CUDA": ("GPU Programming",), "Looker": ("LookML",),
    "Data Modeling": ("Data Modelling", "Dimensional Modeling"), "BigQuery": ("Google BigQuery",),
    "Go": ("Golang",), "PostgreSQL": ("Postgres",),
    "Microservices": ("Microservice Architecture",), "REST APIs": ("RESTful Services", "REST"),
    "TypeScript": ("TS",), "React": ("React.js", "ReactJS"), "CSS": ("CSS3",),
    "Next.js": ("NextJS",), "Accessibility": ("a11y", "WCAG"), "GraphQL": ("Apollo GraphQL",),
    "iOS": ("iOS Development",), "Android": ("Android SDK",), "Jetpack Compose": ("Compose",),
    "Firebase": ("Google Firebase",), "Terraform": ("HashiCorp Terraform", "IaC"),
    "AWS": ("Amazon Web Services",), "Linux": ("Unix/Linux",),
    "Incident Response": ("On-call", "Incident Management"),
    "CI/CD": ("Continuous Integration", "Continuous Delivery"),
    "Roadmapping": ("Product Roadmaps",), "User Research": ("UX Research",),
    "Stakeholder Management": ("Stakeholder Communication",),
    "Product Analytics": ("Amplitude", "Mixpanel"), "Agile": ("Scrum",),
    "Pricing": ("Pricing Strategy",), "Prototyping": ("Rapid Prototyping",),
    "Interaction Design": ("IxD",), "Design Systems": ("Component Libraries",),
    "Usability Testing": ("User Testing",), "Salesforce": ("SFDC", "Salesforce CRM"),
    "Enterprise Sales": ("B2B Sales",), "Pipeline Management": ("Pipeline Building",),
    "SaaS": ("Software as a Service",), "Cold Calling": ("Outbound Calling",),
    "Lead Generation": ("Lead Gen",), "Outreach": ("Outreach.io",), "HubSpot": ("Hubspot CRM",),
    "Prospecting": ("Sales Prospecting",), "CRM": ("Customer Relationship Management",),
    "SEO": ("Search Engine Optimization",), "Google Ads": ("AdWords", "Google AdWords"),
    "Marketing Analytics": ("Marketing Measurement",),
    "Lifecycle Marketing": ("Email Marketing", "CRM Marketing"), "Copywriting": ("Copy Writing",),
    "Paid Social": ("Social Ads", "Facebook Ads"), "Content Strategy": ("Content Planning",),
    "Editing": ("Copy Editing", "Proofreading"), "WordPress": ("WP",),
    "Social Media": ("Social Media Marketing",), "Brand Voice": ("Tone of Voice",),
    "Excel": ("MS Excel", "Spreadsheets"),
    "Financial Modeling": ("Financial Modelling", "3-Statement Modeling"),
    "FP&A": ("Financial Planning and Analysis",), "Valuation": ("DCF Valuation",),
    "Budgeting": ("Budget Planning",), "PowerPoint": ("MS PowerPoint",), "GAAP": ("US GAAP",),
    "IFRS": ("International Financial Reporting Standards",), "Audit": ("Auditing",),
    "Tax": ("Taxation", "Tax Compliance"), "Reconciliation": ("Account Reconciliation",),
    "SAP": ("SAP ERP", "SAP S/4HANA"), "Patient Care": ("Bedside Care",),
    "BLS": ("Basic Life Support",), "Medication Administration": ("Med Administration",),
    "Triage": ("Patient Triage",), "ICU": ("Intensive Care", "Critical Care"),
    "EHR": ("Electronic Health Records", "EMR"), "Wound Care": ("Wound Management",),
    "Pediatrics": ("Paediatrics",), "Medication Review": ("Medication Therapy Management",),
    "Compounding": ("Sterile Compounding",), "Patient Counseling": ("Patient Counselling",),
    "Clinical Trials": ("Clinical Research",), "Inventory Management": ("Inventory Control",),
    "Demand Planning": ("Demand Forecasting",), "Procurement": ("Purchasing",),
    "Lean": ("Lean Manufacturing",), "Process Improvement": ("Continuous Improvement", "Kaizen"),
    "Six Sigma": ("Lean Six Sigma",), "Team Leadership": ("People Management",),
    "Vendor Management": ("Supplier Management",), "KPIs": ("Performance Metrics",),
}
# fmt: on

OCC_NAMES = tuple(OCCUPATIONS)
ALL_SKILLS = tuple(sorted({s for _, _, pool in OCCUPATIONS.values() for s in pool}))
# Skills padded into keyword-stuffed lists besides the family's own: what gets searched for.
BUZZWORDS = ("Python", "SQL", "Excel", "AWS", "Kubernetes", "Agile", "Salesforce", "SEO")

REGIONS: tuple[tuple[str, str], ...] = (
    ("Berlin", "DE"),
    ("Munich", "DE"),
    ("Paris", "FR"),
    ("Lyon", "FR"),
    ("London", "GB"),
    ("Manchester", "GB"),
    ("Amsterdam", "NL"),
    ("Madrid", "ES"),
    ("Barcelona", "ES"),
    ("New York", "US"),
    ("San Francisco", "US"),
    ("Austin", "US"),
    ("Toronto", "CA"),
    ("Bangalore", "IN"),
    ("Singapore", "SG"),
    ("Sydney", "AU"),
)
COUNTRIES = tuple(sorted({c for _, c in REGIONS}))
EU = ("DE", "ES", "FR", "NL")  # the EU member states among the countries here
COUNTRY_NAMES = {
    "AU": "Australia", "CA": "Canada", "DE": "Germany", "ES": "Spain", "FR": "France",
    "GB": "the United Kingdom", "IN": "India", "NL": "the Netherlands", "SG": "Singapore",
    "US": "the United States",
}  # fmt: skip

LEVEL_WORDS = ("Junior", "", "Senior", "Staff", "Principal")
# Years of experience that read as each level (policy section 3.3); rendered years fall inside.
LEVEL_YEARS = ((0, 2), (3, 5), (6, 9), (10, 14), (15, 25))

COMPANIES = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Logistics",
    "Wayne Finance",
    "Hooli",
    "Vandelay Industries",
    "Soylent",
    "Tyrell Systems",
    "Cyberdyne",
    "Aperture",
)

# Facts that must never move a grade (policy section 6): real summaries carry them.
ASIDES = (
    "Outside work I coach a youth football team.",
    "Back at work after a year of parental leave.",
    "Proud parent of two.",
    "Fluent in English and Spanish.",
    "I took a career break to care for a family member.",
    "Veteran of the armed forces.",
    "Marathon runner and amateur photographer.",
)
