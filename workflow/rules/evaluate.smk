# Evaluation on the test split: the strict protocol (with its ablations), the paper protocol and the
# zero-shot baselines, one job each.


rule evaluate_strict:
    input:
        model=RESULTS / "train" / "model.pt",
        features=RESULTS / "features" / "test.h5",
    output:
        metrics_files(*STRICT_PASS),
        rankings=METRICS / "strict_rankings.npz",
    params:
        names=" ".join(STRICT_PASS),
        out_dir=METRICS,
        settings=settings(config["evaluate"]),
        code=code_hash("evaluation/*.py", "model/*.py", "metrics.py"),
    threads: 2
    resources:
        mem_mb=8000,
        gpu=int(config["evaluate"]["device"] != "cpu"),
    conda:
        CONDA_ENV
    log:
        LOGS / "evaluate_strict.log",
    benchmark:
        RESULTS / "benchmarks" / "evaluate_strict.tsv"
    shell:
        "vscn evaluate --model {input.model} --features {input.features} --out-dir {params.out_dir}"
        " --names {params.names} --threads {threads} --settings {params.settings:q} 2> {log}"


rule evaluate_paper:
    input:
        model=RESULTS / "train" / "model.pt",
        features=RESULTS / "features" / "test.h5",
    output:
        metrics_files("paper"),
    params:
        out_dir=METRICS,
        settings=settings(config["evaluate"]),
        code=code_hash("evaluation/*.py", "model/*.py", "metrics.py"),
    threads: 2
    resources:
        mem_mb=8000,
        gpu=int(config["evaluate"]["device"] != "cpu"),
    conda:
        CONDA_ENV
    log:
        LOGS / "evaluate_paper.log",
    shell:
        "vscn evaluate --model {input.model} --features {input.features} --out-dir {params.out_dir}"
        " --names paper --threads {threads} --settings {params.settings:q} 2> {log}"


rule baseline:
    input:
        RESULTS / "features" / "test.h5",
    output:
        metrics_files("{baseline}"),
    wildcard_constraints:
        baseline="|".join(BASELINES),
    params:
        out_dir=METRICS,
        max_turns=config["scenes"]["max_turns"],
        code=code_hash("evaluation/*.py", "metrics.py"),
    resources:
        mem_mb=4000,
    conda:
        CONDA_ENV
    log:
        LOGS / "baseline_{baseline}.log",
    shell:
        "vscn baseline --features {input} --out-dir {params.out_dir} --name {wildcards.baseline}"
        " --max-turns {params.max_turns} 2> {log}"
