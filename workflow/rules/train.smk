# Training: VSCN on the train split, validated on the val split every epoch.


rule train:
    input:
        train=RESULTS / "features" / "train.h5",
        val=RESULTS / "features" / "val.h5",
    output:
        model=RESULTS / "train" / "model.pt",
        train_log=RESULTS / "train" / "train_log.csv",
        val_log=RESULTS / "train" / "val_log.csv",
    params:
        out_dir=RESULTS / "train",
        # The resumable state is not a declared output, so Snakemake keeps it when a killed job is
        # re-run; it is named by everything that shapes the weights, so other settings start afresh.
        state=training_state(),
        model=settings(config["model"]),
        settings=settings(config["train"]),
        max_turns=config["scenes"]["max_turns"],
        code=TRAIN_CODE,
    threads: 2
    resources:
        mem_mb=16000,
        gpu=int(config["train"]["device"] != "cpu"),
    conda:
        CONDA_ENV
    log:
        LOGS / "train.log",
    benchmark:
        RESULTS / "benchmarks" / "train.tsv"
    shell:
        "vscn train --train {input.train} --val {input.val} --out-dir {params.out_dir} --state {params.state}"
        " --max-turns {params.max_turns} --threads {threads} --model {params.model:q}"
        " --settings {params.settings:q} 2> {log}"
