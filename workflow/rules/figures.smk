def figure_outputs():
    """PNGs go into `snakemake --report` with their caption (workflow/report/<name>.rst); PDFs beside them."""
    outs = []
    for path in FIGURES:
        name, ext = os.path.splitext(os.path.basename(path))
        outs.append(report(path, caption=f"../report/{name}.rst", category="Figures") if ext == ".png" else path)
    return outs


rule figures:
    """The paper's figures, redrawn from the metrics of the judge named in params (figures.judge)."""
    input:
        figure_metrics(FIGURE_JUDGE),
    output:
        figure_outputs(),
    params:
        config_file=PARAMS,
        metrics_dir=LAYOUT.metrics_dir.format(judge=FIGURE_JUDGE),
        out_dir=LAYOUT.figures_dir,
        pdf_dir=LAYOUT.figure_pdf_dir,
    log:
        LAYOUT.log("figures.log"),
    conda:
        ENV
    shell:
        "safemt figures --params {params.config_file} -i {params.metrics_dir} -o {params.out_dir}"
        " --pdf-dir {params.pdf_dir} > {log} 2>&1"


rule tables:
    """SI/ASR, dataset, moderation and judge-agreement tables as CSV, Markdown and LaTeX."""
    input:
        figure_metrics(FIGURE_JUDGE),
    output:
        TABLES,
    params:
        config_file=PARAMS,
        metrics_dir=LAYOUT.metrics_dir.format(judge=FIGURE_JUDGE),
        out_dir=LAYOUT.tables_dir,
    log:
        LAYOUT.log("tables.log"),
    conda:
        ENV
    shell:
        "safemt tables --params {params.config_file} -i {params.metrics_dir} -o {params.out_dir} > {log} 2>&1"


rule numbers:
    """numbers.tex: one LaTeX macro per number the paper quotes; numbers.json with the same values."""
    input:
        figure_metrics(FIGURE_JUDGE),
    output:
        tex=LAYOUT.numbers_tex,
        json=LAYOUT.numbers_json,
    params:
        config_file=PARAMS,
        metrics_dir=LAYOUT.metrics_dir.format(judge=FIGURE_JUDGE),
    log:
        LAYOUT.log("numbers.log"),
    conda:
        ENV
    shell:
        "safemt numbers --params {params.config_file} -i {params.metrics_dir} -o {output.tex} --json {output.json}"
        " > {log} 2>&1"


rule provenance:
    """Commit, params hash, packages, model and judge revisions, dataset hash, times, machine."""
    input:
        DATASET,
        metrics_summaries(),
        FIGURES,
        TABLES,
        PAPER,
    output:
        LAYOUT.provenance,
    params:
        config_file=PARAMS,
    log:
        LAYOUT.log("provenance.log"),
    conda:
        ENV
    shell:
        "safemt provenance --params {params.config_file} -o {output} > {log} 2>&1"


rule html_report:
    """One self-contained page read first: the summary table (numbers as in numbers.json), what was run,
    the figures, a browser of sampled dialogues with verdicts, the tables and the measured times."""
    input:
        LAYOUT.provenance,
        FIGURES,
        TABLES,
        PAPER,
        figure_metrics(FIGURE_JUDGE),
        # every metrics judge's verdicts: the shown judge's are sampled, the others give per-cell agreement
        [judgments(j, m, d) for j in METRIC_JUDGES for m in TARGETS for d in DEFENSES],
        # the defenses' measured times, shown beside the tables
        [LAYOUT.moderation_latency.format(judge=FIGURE_JUDGE)] if moderation_files() else [],
    output:
        LAYOUT.report,
    params:
        config_file=PARAMS,
        cfg=json.dumps({"report": config.get("report", {}), "judge": FIGURE_JUDGE}, sort_keys=True),
    log:
        LAYOUT.log("report.log"),
    conda:
        ENV
    shell:
        "safemt report --params {params.config_file} -o {output} > {log} 2>&1"
