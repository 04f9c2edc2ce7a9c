# Report: one self-contained page over the run, and its figures for `snakemake --report`.


rule report:
    input:
        config=RESULTS / "config.yaml",
        scenes=RESULTS / "scenes",
        model=RESULTS / "train" / "model.pt",
        train_log=RESULTS / "train" / "train_log.csv",
        metrics=all_metrics(),
        rankings=METRICS / "strict_rankings.npz",
    output:
        html=REPORT_HTML,
        captions=report(
            REPORT_FIGURES / "captions_per_scene.svg", caption="../report/captions_per_scene.rst", category="Data"
        ),
        lengths=report(REPORT_FIGURES / "caption_length.svg", caption="../report/caption_length.rst", category="Data"),
        loss=report(REPORT_FIGURES / "training_loss.svg", caption="../report/training_loss.rst", category="Training"),
        lr=report(REPORT_FIGURES / "learning_rate.svg", caption="../report/learning_rate.rst", category="Training"),
        validation=report(REPORT_FIGURES / "validation.svg", caption="../report/validation.rst", category="Training"),
        recall=report(REPORT_FIGURES / "recall_vs_turn.svg", caption="../report/recall_vs_turn.rst", category="Retrieval"),
    params:
        run_dir=RESULTS,
        figures=REPORT_FIGURES,
        settings=settings(config["report"]),
        code=code_hash("report/*.py"),
    conda:
        CONDA_ENV
    log:
        LOGS / "report.log",
    shell:
        "vscn report --runs {params.run_dir} --out {output.html} --figures {params.figures}"
        " --settings {params.settings:q} 2> {log}"
