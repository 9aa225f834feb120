//! One self-contained HTML file per suggestion: inline SVG charts and tables, no scripts,
//! no outside resources; readable offline and printable.

use std::fmt::Write;

use crate::metrics::Point;
use crate::suggest::{Evaluation, Suggestion};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 320.0;
const H: f64 = 240.0;
const PAD: f64 = 36.0;
const CURRENT: &str = "#888888";
const SUGGESTED: &str = "#c0392b";

fn sx(x: f64) -> f64 {
    PAD + x.clamp(0.0, 1.0) * (W - PAD - 10.0)
}

fn sy(y: f64) -> f64 {
    H - PAD - y.clamp(0.0, 1.0) * (H - PAD - 10.0)
}

fn axes(svg: &mut String, x_label: &str, y_label: &str) {
    let _ = write!(
        svg,
        r##"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#333"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#333"/>"##,
        x0 = sx(0.0),
        y0 = sy(0.0),
        x1 = sx(1.0),
        y1 = sy(1.0)
    );
    for t in [0.0, 0.5, 1.0] {
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="middle">{t}</text><text x="{}" y="{}" font-size="10" text-anchor="end">{t}</text>"##,
            sx(t),
            sy(0.0) + 14.0,
            sx(0.0) - 4.0,
            sy(t) + 3.0
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text><text x="12" y="{}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {})">{}</text>"##,
        sx(0.5),
        H - 6.0,
        escape(x_label),
        sy(0.5),
        sy(0.5),
        escape(y_label)
    );
}

fn polyline(svg: &mut String, points: &[Point], colour: &str, dashed: bool) {
    let path: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", sx(p.x), sy(p.y)))
        .collect();
    let _ = write!(
        svg,
        r#"<polyline fill="none" stroke="{colour}" stroke-width="2" {} points="{}"/>"#,
        if dashed {
            r#"stroke-dasharray="5,4""#
        } else {
            ""
        },
        path.join(" ")
    );
}

fn chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, &[Point], &str)],
    diagonal: bool,
) -> String {
    let mut svg = format!(
        r#"<figure><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{}">"#,
        escape(title),
        escape(title)
    );
    axes(&mut svg, x_label, y_label);
    if diagonal {
        polyline(
            &mut svg,
            &[Point { x: 0.0, y: 0.0 }, Point { x: 1.0, y: 1.0 }],
            "#bbbbbb",
            true,
        );
    }
    for (i, (name, points, colour)) in series.iter().enumerate() {
        polyline(&mut svg, points, colour, false);
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{}" width="10" height="3" fill="{colour}"/><text x="{}" y="{}" font-size="10">{}</text>"#,
            sx(0.55),
            sy(0.2) + 14.0 * i as f64,
            sx(0.55) + 14.0,
            sy(0.2) + 14.0 * i as f64 + 4.0,
            escape(name)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn band_bars(current: Option<&Evaluation>, suggested: &Evaluation) -> String {
    let mut rows: Vec<(&str, &Evaluation, &str)> = Vec::new();
    if let Some(c) = current {
        rows.push(("current", c, CURRENT));
    }
    rows.push(("suggested", suggested, SUGGESTED));
    let max = rows
        .iter()
        .flat_map(|(_, e, _)| e.bands.iter().map(|b| b.conversion))
        .fold(0.01, f64::max);
    let mut svg = format!(
        r#"<figure><figcaption>Conversion per band (hold-out)</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="Conversion per band">"#
    );
    let group_width = (W - PAD - 10.0) / 3.0;
    let bar = group_width / (rows.len() as f64 + 1.0);
    for (b, band) in ["hot", "warm", "cold"].iter().enumerate() {
        let x0 = PAD + b as f64 * group_width;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">{band}</text>"#,
            x0 + group_width / 2.0,
            H - 10.0
        );
        for (r, (_, eval, colour)) in rows.iter().enumerate() {
            if let Some(conv) = eval.bands.iter().find(|c| c.band == *band) {
                let height = conv.conversion / max * (H - PAD - 30.0);
                let x = x0 + bar * (r as f64 + 0.5);
                let _ = write!(
                    svg,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{height:.1}" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">{:.1}%</text>"#,
                    H - PAD - height,
                    bar * 0.9,
                    x + bar * 0.45,
                    H - PAD - height - 3.0,
                    conv.conversion * 100.0
                );
            }
        }
    }
    svg.push_str("</svg></figure>");
    svg
}

fn calibration_points(eval: &Evaluation) -> Vec<Point> {
    eval.calibration
        .iter()
        .map(|b| Point {
            x: b.mean_predicted,
            y: b.observed,
        })
        .collect()
}

fn opt(value: Option<f64>, digits: usize) -> String {
    value.map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn figures_row(name: &str, e: &Evaluation) -> String {
    format!(
        "<tr><th>{}</th><td>{:.3}</td><td>{:.4}</td><td>{:.2}</td><td>{:.1} %</td><td>{}</td><td>{:.1} %</td><td>{}</td><td>{}</td></tr>",
        escape(name),
        e.auc,
        e.log_loss,
        e.top_decile_lift,
        e.top_decile_capture * 100.0,
        e.threshold,
        e.hot_share * 100.0,
        opt(e.hot_per_week, 1),
        opt(e.capacity_threshold, 0)
    )
}

/// The report's charts (ROC, cumulative gains, conversion per band, calibration), current
/// against suggested, as one `<section>` of inline SVG.
pub fn charts(s: &Suggestion) -> String {
    let mut roc: Vec<(&str, &[Point], &str)> = Vec::new();
    let mut gains: Vec<(&str, &[Point], &str)> = Vec::new();
    let current_calibration = s.current.as_ref().map(calibration_points);
    let suggested_calibration = calibration_points(&s.suggested);
    let mut calibration: Vec<(&str, &[Point], &str)> = Vec::new();
    if let Some(c) = &s.current {
        roc.push(("current", &c.roc, CURRENT));
        gains.push(("current", &c.gains, CURRENT));
    }
    if let Some(points) = &current_calibration {
        calibration.push(("current", points, CURRENT));
    }
    roc.push(("suggested", &s.suggested.roc, SUGGESTED));
    gains.push(("suggested", &s.suggested.gains, SUGGESTED));
    calibration.push(("suggested", &suggested_calibration, SUGGESTED));
    let mut html = String::from("<section>");
    html.push_str(&chart(
        "ROC (hold-out)",
        "false positive rate",
        "true positive rate",
        &roc,
        true,
    ));
    html.push_str(&chart(
        "Cumulative gains (hold-out)",
        "share of leads called",
        "share of won deals found",
        &gains,
        true,
    ));
    html.push_str(&band_bars(s.current.as_ref(), &s.suggested));
    html.push_str(&chart(
        "Calibration (hold-out)",
        "predicted win rate",
        "observed win rate",
        &calibration,
        true,
    ));
    html.push_str("</section>");
    html
}

/// Renders the report; `title` names the suggestion (its id).
pub fn render(title: &str, s: &Suggestion) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{t}</title><style>
body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#222}}
table{{border-collapse:collapse;margin:1rem 0}}td,th{{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}}
th:first-child,td:first-child{{text-align:left}}.flag{{color:#a15c00}}figure{{display:inline-block;margin:.5rem}}
figcaption{{font-weight:600;font-size:.9rem}}@media print{{body{{margin:0}}figure{{break-inside:avoid}}}}
</style></head><body><h1>Suggested rule weights</h1><p>Suggestion <code>{t}</code>"#,
        t = escape(title)
    );
    if let Some(base) = &s.base {
        let _ = write!(
            html,
            " for rules <b>{} v{}</b>",
            escape(&base.name),
            base.version
        );
    }
    let d = &s.data;
    let _ = write!(
        html,
        ". Learned from {} closed deals ({} won, {} lost): {} for training, {} held out ({} split, seed {}). The hold-out was never seen while fitting. {} rules weighed ({} discovered). Regularisation C = {} chosen by cross-validation on the training part. Scale: {}.</p>",
        d.outcomes,
        d.won,
        d.lost,
        d.training,
        d.holdout,
        match d.split {
            crate::Split::Random => "random",
            crate::Split::Order => "time-ordered",
        },
        d.seed,
        d.features,
        d.discovered,
        s.model.c,
        escape(&s.model.scale)
    );
    let _ = write!(
        html,
        "<h2>Hold-out figures</h2><table><tr><th>rules</th><th>AUC</th><th>log loss</th><th>top-decile lift</th><th>top-decile capture</th><th>hot at</th><th>hot share</th><th>hot per week</th><th>threshold for capacity</th></tr>"
    );
    if let Some(c) = &s.current {
        html.push_str(&figures_row("current", c));
    }
    html.push_str(&figures_row("suggested", &s.suggested));
    let _ = write!(
        html,
        "</table><p>Suggested hot threshold: <b>{}</b> (leaves hot below {}), warm {}; it {}.",
        s.thresholds.hot,
        s.thresholds.hot_exit,
        s.thresholds.warm,
        escape(&s.thresholds.reason)
    );
    if let Some(capacity) = d.capacity_per_week {
        let _ = write!(html, " Reps' capacity: {capacity} hot leads a week.");
    }
    html.push_str("</p>");

    html.push_str(&charts(s));

    html.push_str("<h2>Weights</h2><p>Points per rule: current, suggested, and the suggested range (±1.96 standard errors from the Fisher information). Flagged rules have no clear effect.</p><table><tr><th>rule</th><th>source</th><th>leads</th><th>current</th><th>suggested</th><th>range</th><th>note</th></tr>");
    let mut weights: Vec<_> = s.weights.iter().collect();
    weights.sort_by_key(|w| std::cmp::Reverse(w.suggested_points.abs()));
    for w in weights {
        let _ = write!(
            html,
            "<tr><td>{}<br><small>{}</small></td><td>{}</td><td>{}</td><td>{}</td><td><b>{}</b></td><td>{}</td><td class=\"flag\">{}</td></tr>",
            escape(&w.label),
            escape(&w.rule),
            escape(&w.source),
            w.leads,
            opt(w.current_points, 0),
            w.suggested_points,
            match (w.low, w.high) {
                (Some(l), Some(h)) => format!("{l} … {h}"),
                _ => "–".into(),
            },
            escape(w.flag.as_deref().unwrap_or(""))
        );
    }
    html.push_str("</table><h2>Conversion per band</h2><table><tr><th>rules</th><th>band</th><th>leads</th><th>won</th><th>conversion</th></tr>");
    for (name, eval) in s
        .current
        .iter()
        .map(|c| ("current", c))
        .chain([("suggested", &s.suggested)])
    {
        for b in &eval.bands {
            let _ = write!(
                html,
                "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1} %</td></tr>",
                b.band,
                b.leads,
                b.won,
                b.conversion * 100.0
            );
        }
    }
    html.push_str("</table><h2>Calibration</h2><table><tr><th>rules</th><th>leads</th><th>predicted</th><th>observed</th></tr>");
    for (name, eval) in s
        .current
        .iter()
        .map(|c| ("current", c))
        .chain([("suggested", &s.suggested)])
    {
        for b in &eval.calibration {
            let _ = write!(
                html,
                "<tr><td>{name}</td><td>{}</td><td>{:.1} %</td><td>{:.1} %</td></tr>",
                b.leads,
                b.mean_predicted * 100.0,
                b.observed * 100.0
            );
        }
    }
    let _ = writeln!(
        html,
        "</table><h2>Suggested rules</h2><pre>{}</pre></body></html>",
        escape(&s.rules_toml)
    );
    html
}
