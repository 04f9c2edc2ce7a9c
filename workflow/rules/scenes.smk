# Scenes: Drill-down's parsing and filtering rules, splits, and the columnar scene database.


rule scene_db:
    input:
        DATA_ROOT,
    output:
        directory(RESULTS / "scenes"),
    params:
        layout=settings(config["data"]["layout"]),
        settings=settings(config["scenes"]),
        seed=config["seed"],
        code=code_hash("data/*.py"),
    conda:
        CONDA_ENV
    log:
        LOGS / "scene_db.log",
    shell:
        "vscn scenes --data-root {input} --out {output} --layout {params.layout:q}"
        " --settings {params.settings:q} --seed {params.seed} 2> {log}"
