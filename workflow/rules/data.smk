# Data: the demo world rendered in Visual Genome's per-image layout, or Visual Genome itself.


if config["data"]["source"] == "demo":

    rule demo_data:
        output:
            directory(DATA_ROOT),
        params:
            settings=settings(config["data"]["demo"]),
            code=code_hash("data/demo/*.py", "data/vg.py"),
        conda:
            CONDA_ENV
        log:
            LOGS / "demo_data.log",
        shell:
            "vscn demo --root {output} --settings {params.settings:q} 2> {log}"
