# Data: the demo world rendered in Visual Genome's per-image layout, or Visual Genome itself.


if config["data"]["source"] == "demo":

    rule demo_data:
        output:
            directory(DATA_ROOT),
        params:
            settings=settings(config["data"]["demo"]),
            code=code_hash("data/demo/*.py", *ANNOTATION_CODE),
        conda:
            CONDA_ENV
        log:
            LOGS / "demo_data.log",
        shell:
            "vscn demo --root {output} --settings {params.settings:q} 2> {log}"

else:

    rule vg_reference_list:
        # Drill-down's split and vocabulary lists: their digests are known, so Snakemake checks them.
        output:
            ensure(DATA_ROOT / "caches" / "{name}", sha256=lambda wildcards: REFERENCE_DIGESTS[wildcards.name]),
        wildcard_constraints:
            name="|".join(REFERENCE_DIGESTS),
        params:
            data_root=DATA_ROOT,
            downloads=DOWNLOADS,
        conda:
            CONDA_ENV
        log:
            LOGS / "fetch" / "{name}.log",
        shell:
            "vscn fetch --source {wildcards.name} --data-root {params.data_root} --downloads {params.downloads}"
            " 2> {log}"

    rule vg_fetch_group:
        # Archives without published digests: verified against the manifest their first download recorded.
        output:
            touch(DOWNLOADS / "{group}.done"),
        wildcard_constraints:
            group="|".join(FETCHED_GROUPS),
        params:
            data_root=DATA_ROOT,
            downloads=DOWNLOADS,
        resources:
            downloads=1,
        conda:
            CONDA_ENV
        log:
            LOGS / "fetch" / "{group}.log",
        shell:
            "vscn fetch --group {wildcards.group} --data-root {params.data_root} --downloads {params.downloads}"
            " 2> {log}"

    rule vg_verify:
        input:
            vg_fetched(),
        output:
            DOWNLOADS / "verified.txt",
        params:
            data_root=DATA_ROOT,
        conda:
            CONDA_ENV
        log:
            LOGS / "verify_data.log",
        shell:
            "vscn verify-data --data-root {params.data_root} --report {output} 2> {log}"
