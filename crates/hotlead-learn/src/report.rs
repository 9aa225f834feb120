//! One self-contained HTML file per suggestion: inline SVG charts and tables, no scripts,
//! no outside resources; readable offline and printable.

use std::fmt::Write;

use crate::metrics::Point;
use crate::suggest::{Diff, Evaluation, RuleChange, Suggestion};

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

/// "1 rule gets", "3 rules get".
fn gets(rules: usize) -> String {
    format!(
        "{} {}",
        crate::suggest::count_of(rules),
        if rules == 1 { "gets" } else { "get" }
    )
}

fn points_text(p: f64) -> String {
    crate::discover::format_number(p)
}

fn per_week(diff: &Diff, count: usize) -> String {
    diff.weekly(count)
        .map_or(String::new(), |w| format!(" (about {w:.1} a week)"))
}

/// What the suggestion changes, as lines of text: notices first, then rules added,
/// removed and changed, the thresholds, and the hot list on the hold-out leads.
pub fn diff_lines(s: &Suggestion) -> Vec<String> {
    let d = &s.diff;
    let mut out: Vec<String> = s.notices.iter().map(|n| format!("NOTE: {n}")).collect();
    let change = |c: &RuleChange| {
        format!(
            "{} [{}]: {} -> {}",
            c.label,
            c.rule,
            c.current.map_or("-".into(), points_text),
            c.suggested.map_or("-".into(), |p| p.to_string())
        )
    };
    out.push(format!(
        "{} points: {} added, {} removed, {} changed, {} unchanged. {}.",
        gets(s.weights.iter().filter(|w| w.suggested_points != 0).count()),
        d.added.len(),
        d.removed.len(),
        d.changed.len(),
        d.unchanged,
        s.selection.explanation
    ));
    for (title, rows) in [
        ("added", &d.added),
        ("removed", &d.removed),
        ("changed", &d.changed),
    ] {
        for c in rows {
            out.push(format!("  {title:<8} {}", change(c)));
        }
    }
    out.push(match (d.hot_before, d.warm_before) {
        (Some(hot), Some(warm)) => format!(
            "Thresholds: hot {} -> {}, warm {} -> {}; it {}.",
            points_text(hot),
            d.hot_after,
            points_text(warm),
            d.warm_after,
            s.thresholds.reason
        ),
        _ => format!(
            "Thresholds: hot {}, warm {}; it {}.",
            d.hot_after, d.warm_after, s.thresholds.reason
        ),
    });
    if d.hot_before.is_some() {
        out.push(format!(
            "Hot list on the {} hold-out leads: of {} hot now{}, {} stay hot{}; {} newly hot{}.",
            d.holdout,
            d.hot_now,
            per_week(d, d.hot_now),
            d.stay_hot,
            per_week(d, d.stay_hot),
            d.newly_hot,
            per_week(d, d.newly_hot)
        ));
    } else {
        out.push(format!(
            "Hot list on the {} hold-out leads: {} hot{}.",
            d.holdout,
            d.newly_hot,
            per_week(d, d.newly_hot)
        ));
    }
    out
}

/// The notices and the diff as an HTML `<section>`: what the review starts with.
pub fn diff_html(s: &Suggestion) -> String {
    let d = &s.diff;
    let mut html = String::from("<section class=\"diff\">");
    for notice in &s.notices {
        let _ = write!(
            html,
            "<p class=\"caution\"><b>Note:</b> {}</p>",
            escape(notice)
        );
    }
    let _ = write!(
        html,
        "<h2>What changes</h2><p>{} points: <b>{} added, {} removed, {} changed</b>, {} unchanged. {}.</p>",
        gets(s.weights.iter().filter(|w| w.suggested_points != 0).count()),
        d.added.len(),
        d.removed.len(),
        d.changed.len(),
        d.unchanged,
        escape(&s.selection.explanation)
    );
    if !(d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty()) {
        html.push_str(
            "<table><tr><th>rule</th><th>change</th><th>current</th><th>suggested</th></tr>",
        );
        for (title, rows) in [
            ("added", &d.added),
            ("removed", &d.removed),
            ("changed", &d.changed),
        ] {
            for c in rows {
                let _ = write!(
                    html,
                    "<tr><td>{}<br><small>{}</small></td><td>{title}</td><td>{}</td><td><b>{}</b></td></tr>",
                    escape(&c.label),
                    escape(&c.rule),
                    c.current.map_or("–".into(), points_text),
                    c.suggested.map_or("–".into(), |p| p.to_string())
                );
            }
        }
        html.push_str("</table>");
    }
    let _ = write!(
        html,
        "<p>Hot threshold: <b>{}</b>; warm: <b>{}</b>. It {}.</p>",
        match d.hot_before {
            Some(before) => format!("{} → {}", points_text(before), d.hot_after),
            None => d.hot_after.to_string(),
        },
        match d.warm_before {
            Some(before) => format!("{} → {}", points_text(before), d.warm_after),
            None => d.warm_after.to_string(),
        },
        escape(&s.thresholds.reason)
    );
    if d.hot_before.is_some() {
        let _ = write!(
            html,
            "<p>On the {} hold-out leads: of the <b>{}</b> hot with the current rules{}, <b>{}</b> stay hot{}; <b>{}</b> are newly hot{}.</p>",
            d.holdout,
            d.hot_now,
            escape(&per_week(d, d.hot_now)),
            d.stay_hot,
            escape(&per_week(d, d.stay_hot)),
            d.newly_hot,
            escape(&per_week(d, d.newly_hot))
        );
    } else {
        let _ = write!(
            html,
            "<p>On the {} hold-out leads, <b>{}</b> are hot{}.</p>",
            d.holdout,
            d.newly_hot,
            escape(&per_week(d, d.newly_hot))
        );
    }
    html.push_str("</section>");
    html
}

/// The selection path: rules kept against cross-validated and hold-out AUC, as a chart
/// and a table, the chosen point marked.
pub fn path_html(s: &Suggestion) -> String {
    let path = &s.selection.path;
    if path.is_empty() {
        return String::new();
    }
    let max_rules = path.iter().map(|p| p.rules).max().unwrap_or(1).max(1) as f64;
    let (low, high) = path
        .iter()
        .flat_map(|p| [p.cv_auc, p.holdout_auc])
        .filter(|v| v.is_finite())
        .fold((1.0_f64, 0.5_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let low = (low - 0.01).max(0.0);
    let span = (high + 0.01 - low).max(0.01);
    let to_point = |rules: usize, auc: f64| Point {
        x: rules as f64 / max_rules,
        y: (auc - low) / span,
    };
    let cv: Vec<Point> = path.iter().map(|p| to_point(p.rules, p.cv_auc)).collect();
    let held: Vec<Point> = path
        .iter()
        .map(|p| to_point(p.rules, p.holdout_auc))
        .collect();
    let mut html = String::from("<section><h2>What each rule buys</h2>");
    let mut svg = chart(
        &format!(
            "AUC against rules kept (x: 0 – {}, y: {:.2} – {:.2})",
            max_rules,
            low,
            low + span
        ),
        "rules kept",
        "AUC",
        &[
            ("cross-validated", &cv, CURRENT),
            ("hold-out", &held, SUGGESTED),
        ],
        false,
    );
    let chosen = &path[s.selection.chosen.min(path.len() - 1)];
    let mark = to_point(chosen.rules, chosen.holdout_auc);
    let marker = format!(
        r##"<circle cx="{:.1}" cy="{:.1}" r="5" fill="none" stroke="#000"/></svg>"##,
        sx(mark.x),
        sy(mark.y)
    );
    svg = svg.replacen("</svg>", &marker, 1);
    html.push_str(&svg);
    html.push_str("<table><tr><th>rules</th><th>cross-validated log loss</th><th>± s.e.</th><th>cross-validated AUC</th><th>hold-out AUC</th><th></th></tr>");
    let mut last = usize::MAX;
    for (i, p) in path.iter().enumerate() {
        if p.rules == last && i != s.selection.chosen && i != s.selection.best {
            continue;
        }
        last = p.rules;
        let note = if i == s.selection.chosen {
            "suggested"
        } else if i == s.selection.best {
            "lowest loss"
        } else {
            ""
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.3}</td><td>{:.3}</td><td>{note}</td></tr>",
            p.rules, p.cv_log_loss, p.cv_se, p.cv_auc, p.holdout_auc
        );
    }
    html.push_str("</table>");
    if !s.selection.set_aside.is_empty() {
        html.push_str("<p>Set aside before fitting:</p><ul>");
        for a in &s.selection.set_aside {
            let _ = write!(
                html,
                "<li>{} <small>{}</small>: {}</li>",
                escape(&a.label),
                escape(&a.rule),
                escape(&a.reason)
            );
        }
        html.push_str("</ul>");
    }
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
th:first-child,td:first-child{{text-align:left}}.flag{{color:#a15c00}}.caution{{background:#fff4e0;border-left:4px solid #b45309;padding:.5rem}}figure{{display:inline-block;margin:.5rem}}
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
    html.push_str(".</p>");
    html.push_str(&diff_html(s));
    let d = &s.data;
    let _ = write!(
        html,
        "<h2>How it was learned</h2><p>Learned from {} closed deals ({} won, {} lost): {} for training, {} held out ({} split, seed {}). The hold-out was never seen while fitting. {} rules weighed ({} discovered); the rules were chosen by an L1 path cross-validated on the training part, then refitted (L2, C = {}). Scale: {}. New leads a week: {}.</p>",
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
        escape(&s.model.scale),
        d.leads_per_week.map_or("unknown".to_string(), |w| format!(
            "{w:.0} (from {})",
            escape(&d.leads_per_week_source)
        ))
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
    html.push_str(&path_html(s));

    html.push_str("<h2>Weights</h2><p>Points per rule: current, suggested, the suggested range (±1.96 standard errors from the Fisher information), and how often bootstrap refits of the training part chose the rule. Rules neither in use nor chosen are not listed.</p><table><tr><th>rule</th><th>source</th><th>leads</th><th>current</th><th>suggested</th><th>range</th><th>chosen in</th><th>note</th></tr>");
    let mut weights: Vec<_> = s
        .weights
        .iter()
        .filter(|w| w.suggested_points != 0 || w.current_points.is_some())
        .collect();
    weights.sort_by_key(|w| std::cmp::Reverse(w.suggested_points.abs()));
    for w in weights {
        let _ = write!(
            html,
            "<tr><td>{}<br><small>{}</small></td><td>{}</td><td>{}</td><td>{}</td><td><b>{}</b></td><td>{}</td><td>{}</td><td class=\"flag\">{}</td></tr>",
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
            w.stability
                .map_or("–".into(), |f| format!("{:.0} %", f * 100.0)),
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
