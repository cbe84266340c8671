"""HTML reports of ablation studies: `python -m study.report [--study NAME] [--runs DIR] [--out DIR]`.

`tables` computes (pandas), `claims` judges, `figures` plots (matplotlib/seaborn, SVG), `html`
renders (jinja2, autoescaped), `build` reads a study's run directory and writes its page
(`build.build_reports` is the entry point), `summary` condenses every study of a run into
`reports/index.html` and `reports/contrasts.csv`. Nothing heavy is imported here, so `--help` is instant.
"""
