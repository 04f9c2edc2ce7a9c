# The workflow lives in workflow/; this file lets `snakemake` run from the repository root.
include: "workflow/Snakefile"


# An included file's first rule is not the default target, so name it here.
workflow.default_target = "all"
