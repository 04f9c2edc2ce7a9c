# Provenance: what produced the results of a run.

rule resolved_config:
    # The configuration with every default filled in, saved beside the results it produced.
    output:
        RESULTS / "config.yaml",
    params:
        settings=settings(config),
    conda:
        CONDA_ENV
    log:
        LOGS / "resolved_config.log",
    shell:
        "vscn write-config --out {output} --settings {params.settings:q} 2> {log}"
