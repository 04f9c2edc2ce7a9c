# The workflow lives in workflow/; this file lets `snakemake` run from the repository root.
include: "workflow/Snakefile"
