# Scenes: Drill-down's parsing and filtering rules, splits, and the columnar scene database.


rule scene_db:
    input:
        data_ready(),
    output:
        directory(RESULTS / "scenes"),
    params:
        data_root=DATA_ROOT,
        layout=settings(config["data"]["layout"]),
        settings=settings(config["scenes"]),
        seed=config["seed"],
        code=code_hash(*ANNOTATION_CODE, "data/layout.py", "data/scenes.py"),
    conda:
        CONDA_ENV
    log:
        LOGS / "scene_db.log",
    shell:
        "vscn scenes --data-root {params.data_root} --out {output} --layout {params.layout:q}"
        " --settings {params.settings:q} --seed {params.seed} 2> {log}"
