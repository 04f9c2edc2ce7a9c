# Features: one HDF5 file per split, from the encoders the config names.


rule features:
    input:
        RESULTS / "scenes",
    output:
        RESULTS / "features" / "{split}.h5",
    wildcard_constraints:
        split="|".join(SPLITS),
    params:
        data_root=DATA_ROOT,
        settings=settings(config["features"]),
        code=code_hash("data/encoders/*.py", "data/features.py", "data/feature_step.py"),
    threads: 2
    resources:
        mem_mb=4000,
    conda:
        CONDA_ENV
    log:
        LOGS / "features_{split}.log",
    benchmark:
        RESULTS / "benchmarks" / "features_{split}.tsv"
    shell:
        "vscn features --scenes {input} --split {wildcards.split} --data-root {params.data_root}"
        " --out {output} --threads {threads} --settings {params.settings:q} 2> {log}"
