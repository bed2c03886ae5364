//! The run's report as one self-contained HTML file (`report.html`): the Markdown report
//! rendered, then plots drawn as inline SVG from the run's artifacts. Nothing is fetched: no
//! scripts, no fonts, no images from elsewhere.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use autodl_artifacts::criteria::{Assessment, Scorecard};
use autodl_artifacts::io::read_json;
use autodl_artifacts::model::TrainedModel;
use autodl_artifacts::run::paths;
use autodl_artifacts::trial::{SearchHistory, TrialOutcome};

/// Escapes text for HTML and SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline Markdown: `code`, **bold**, [text](link) as text with the link.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(['`', '*']) {
        out.push_str(&esc(&rest[..i]));
        let tail = &rest[i..];
        if let Some(code) = tail.strip_prefix('`')
            && let Some(end) = code.find('`')
        {
            let _ = write!(out, "<code>{}</code>", esc(&code[..end]));
            rest = &code[end + 1..];
        } else if let Some(bold) = tail.strip_prefix("**")
            && let Some(end) = bold.find("**")
        {
            let _ = write!(out, "<strong>{}</strong>", esc(&bold[..end]));
            rest = &bold[end + 2..];
        } else {
            out.push_str(&esc(&tail[..1]));
            rest = &tail[1..];
        }
    }
    out.push_str(&esc(rest));
    out
}

/// The Markdown subset the reports use: headings, tables, fenced code, lists, paragraphs.
fn markdown(md: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with("```") {
            let mut code = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].starts_with("```") {
                code.push(lines[i]);
                i += 1;
            }
            let _ = writeln!(out, "<pre>{}</pre>", esc(&code.join("\n")));
        } else if let Some(h) = line.strip_prefix('#') {
            let level = 1 + h.chars().take_while(|&c| c == '#').count();
            let text = h.trim_start_matches('#').trim();
            let _ = writeln!(out, "<h{level}>{}</h{level}>", inline(text));
        } else if line.starts_with('|') {
            let mut rows = Vec::new();
            while i < lines.len() && lines[i].starts_with('|') {
                rows.push(lines[i]);
                i += 1;
            }
            let cells = |row: &str| -> Vec<String> {
                row.trim()
                    .trim_matches('|')
                    .split(" | ")
                    .map(|c| c.trim().trim_matches('|').trim().to_string())
                    .collect()
            };
            out.push_str("<table>");
            for (k, row) in rows.iter().enumerate() {
                if k == 1 && row.contains("---") {
                    continue;
                }
                let tag = if k == 0 { "th" } else { "td" };
                out.push_str("<tr>");
                for c in cells(row) {
                    let _ = write!(out, "<{tag}>{}</{tag}>", inline(&c));
                }
                out.push_str("</tr>");
            }
            out.push_str("</table>\n");
            continue;
        } else if line.starts_with("- ") {
            out.push_str("<ul>");
            while i < lines.len() && lines[i].starts_with("- ") {
                let _ = write!(out, "<li>{}</li>", inline(&lines[i][2..]));
                i += 1;
            }
            out.push_str("</ul>\n");
            continue;
        } else if line.starts_with("![") {
            // Images are embedded separately (the report stays one file).
        } else if !line.trim().is_empty() {
            let mut para = vec![line];
            while i + 1 < lines.len()
                && !lines[i + 1].trim().is_empty()
                && !lines[i + 1].starts_with(['#', '|', '`', '-', '!'])
            {
                i += 1;
                para.push(lines[i]);
            }
            let _ = writeln!(out, "<p>{}</p>", inline(&para.join(" ")));
        }
        i += 1;
    }
    out
}

const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#444444"];

/// A line chart of `series` (name, points) with labelled axes.
pub(crate) fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 320.0, 70.0, 150.0, 30.0, 45.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    if all.is_empty() {
        return String::new();
    }
    let (x0, x1) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
        (a.0.min(p.0), a.1.max(p.0))
    });
    let (y0, y1) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
        (a.0.min(p.1), a.1.max(p.1))
    });
    // A flat series gets a small band around its value rather than a unit one.
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let (y0, y1) = if y1 > y0 {
        (y0, y1)
    } else {
        let pad = (y0.abs() * 0.01).max(1e-3);
        (y0 - pad, y0 + pad)
    };
    let x = |v: f64| left + (v - x0) / (x1 - x0) * pw;
    let y = |v: f64| top + ph - (v - y0) / (y1 - y0) * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<figure><svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12" role="img" aria-label="{}"><rect width="100%" height="100%" fill="white"/><text x="{left}" y="18" font-weight="bold">{}</text>"#,
        esc(title),
        esc(title)
    );
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/><line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="black"/>"#,
        top + ph,
        left + pw,
        top + ph,
        top + ph
    );
    for k in 0..=4 {
        let (vx, vy) = (
            x0 + (x1 - x0) * k as f64 / 4.0,
            y0 + (y1 - y0) * k as f64 / 4.0,
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            x(vx),
            top + ph + 16.0,
            short(vx),
            left - 6.0,
            y(vy) + 4.0,
            short(vy)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        h - 8.0,
        esc(x_label),
        top + ph / 2.0,
        top + ph / 2.0,
        esc(y_label)
    );
    for (k, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        // Markers too, so that a series of one point shows.
        if points.len() <= 200 {
            for &(a, b) in points {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"/>"#,
                    x(a),
                    y(b)
                );
            }
        }
        let pts: Vec<String> = points
            .iter()
            .map(|&(a, b)| format!("{:.1},{:.1}", x(a), y(b)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/><line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            pts.join(" "),
            left + pw + 12.0,
            left + pw + 30.0,
            top + 10.0 + 16.0 * k as f64,
            top + 10.0 + 16.0 * k as f64,
            left + pw + 36.0,
            top + 14.0 + 16.0 * k as f64,
            esc(name)
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

/// Horizontal bars of `bars` (label, value).
fn bar_chart(title: &str, unit: &str, bars: &[(String, f64)]) -> String {
    if bars.is_empty() {
        return String::new();
    }
    let (left, row, width) = (230.0, 22.0, 420.0);
    let h = 40.0 + row * bars.len() as f64;
    let max = bars
        .iter()
        .map(|b| b.1.abs())
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<figure><svg xmlns="http://www.w3.org/2000/svg" width="{:.0}" height="{h:.0}" font-family="sans-serif" font-size="12" role="img" aria-label="{}"><rect width="100%" height="100%" fill="white"/><text x="10" y="18" font-weight="bold">{}</text>"#,
        left + width + 120.0,
        esc(title),
        esc(title)
    );
    for (k, (label, v)) in bars.iter().enumerate() {
        let y = 30.0 + row * k as f64;
        let len = v.abs() / max * width;
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{left}" y="{y:.1}" width="{len:.1}" height="{:.1}" fill="#1f77b4"/><text x="{:.1}" y="{:.1}">{} {}</text>"##,
            left - 6.0,
            y + 14.0,
            esc(label),
            row - 6.0,
            left + len + 6.0,
            y + 14.0,
            short(*v),
            esc(unit)
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

/// A confusion matrix: rows true, columns predicted; darker is more.
fn confusion_svg(labels: &[String], counts: &[Vec<usize>]) -> String {
    let n = labels.len();
    let cell = (360.0 / n as f64).clamp(14.0, 48.0);
    let left = 130.0;
    let (w, h) = (
        (left + cell * n as f64 + 20.0).max(520.0),
        60.0 + cell * n as f64 + 80.0,
    );
    let max = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<figure><svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" font-family="sans-serif" font-size="11" role="img" aria-label="confusion matrix"><rect width="100%" height="100%" fill="white"/><text x="10" y="18" font-weight="bold">Confusion matrix on the test split (rows: true, columns: predicted)</text>"#
    );
    for (i, row) in counts.iter().enumerate() {
        let y = 40.0 + cell * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + cell * 0.6,
            esc(&labels[i])
        );
        for (j, &c) in row.iter().enumerate() {
            let shade = (255.0 * (1.0 - c as f64 / max)) as u8;
            let ink = if shade < 128 { "white" } else { "black" };
            let _ = writeln!(
                s,
                r##"<rect x="{:.1}" y="{y:.1}" width="{cell:.1}" height="{cell:.1}" fill="rgb({shade},{shade},255)" stroke="#cccccc"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{ink}">{c}</text>"##,
                left + cell * j as f64,
                left + cell * (j as f64 + 0.5),
                y + cell * 0.6
            );
        }
    }
    // Predicted labels under the columns.
    for (j, label) in labels.iter().enumerate() {
        let x = left + cell * (j as f64 + 0.5);
        let y = 40.0 + cell * n as f64 + 12.0;
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="end" transform="rotate(-45 {x:.1} {y:.1})">{}</text>"#,
            esc(label)
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

/// The chosen architecture as a drawing: one box per node in topological order, top to
/// bottom; an edge between neighbours is a short arrow, a longer one (a skip connection or a
/// branch) an arc on the right.
fn architecture_svg(spec: &autodl_artifacts::arch::ArchitectureSpec) -> String {
    let Ok(g) = spec.validate() else {
        return String::new();
    };
    let (row, box_w, box_h, left) = (34.0, 240.0, 22.0, 20.0);
    let position: std::collections::HashMap<usize, usize> =
        g.order.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    let h = 40.0 + row * g.order.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<figure><svg xmlns="http://www.w3.org/2000/svg" width="520" height="{h:.0}" font-family="sans-serif" font-size="12" role="img" aria-label="architecture"><rect width="100%" height="100%" fill="white"/><text x="{left}" y="16" font-weight="bold">The chosen architecture ({} nodes)</text>"#,
        g.order.len()
    );
    let y = |k: usize| 28.0 + row * k as f64;
    for (i, ins) in g.inputs.iter().enumerate() {
        for &j in ins {
            let (a, b) = (position[&j], position[&i]);
            let (y0, y1) = (y(a) + box_h, y(b));
            if b == a + 1 {
                let _ = writeln!(
                    s,
                    r##"<line x1="{:.1}" y1="{y0:.1}" x2="{:.1}" y2="{y1:.1}" stroke="#555555"/>"##,
                    left + box_w / 2.0,
                    left + box_w / 2.0
                );
            } else {
                let bend = left + box_w + 20.0 + 12.0 * (b - a) as f64;
                let _ = writeln!(
                    s,
                    r##"<path d="M {:.1} {:.1} C {bend:.1} {:.1}, {bend:.1} {:.1}, {:.1} {:.1}" fill="none" stroke="#d62728"/>"##,
                    left + box_w,
                    y(a) + box_h / 2.0,
                    y(a) + box_h / 2.0,
                    y(b) + box_h / 2.0,
                    left + box_w,
                    y(b) + box_h / 2.0
                );
            }
        }
    }
    for (k, &i) in g.order.iter().enumerate() {
        let _ = writeln!(
            s,
            r##"<rect x="{left}" y="{:.1}" width="{box_w}" height="{box_h}" rx="4" fill="#eef4fb" stroke="#1f77b4"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            y(k),
            left + box_w / 2.0,
            y(k) + 15.0,
            esc(&spec.nodes[i].op.label())
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

/// The ten criteria as a chart: one spoke each around a circle, a filled dot where measured
/// (with its value), a hollow one where not.
fn criteria_svg(card: &Scorecard) -> String {
    let (cx, cy, r) = (330.0, 200.0, 120.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<figure><svg xmlns="http://www.w3.org/2000/svg" width="660" height="400" font-family="sans-serif" font-size="12" role="img" aria-label="the ten criteria"><rect width="100%" height="100%" fill="white"/>"#
    );
    let n = card.criteria.len().max(1) as f64;
    for (k, c) in card.criteria.iter().enumerate() {
        let angle = std::f64::consts::TAU * k as f64 / n - std::f64::consts::FRAC_PI_2;
        let (x, y) = (cx + r * angle.cos(), cy + r * angle.sin());
        let (lx, ly) = (cx + (r + 18.0) * angle.cos(), cy + (r + 18.0) * angle.sin());
        let anchor = if angle.cos() > 0.2 {
            "start"
        } else if angle.cos() < -0.2 {
            "end"
        } else {
            "middle"
        };
        let (fill, value) = match &c.assessment {
            Assessment::Measured { value, unit, .. } => {
                ("#1a7f37", format!("{} {unit}", short(*value)))
            }
            Assessment::NotMeasured { .. } => ("white", "not measured".to_string()),
        };
        let _ = writeln!(
            s,
            r##"<line x1="{cx}" y1="{cy}" x2="{x:.1}" y2="{y:.1}" stroke="#dddddd"/><circle cx="{x:.1}" cy="{y:.1}" r="8" fill="{fill}" stroke="#1a7f37" stroke-width="2"/><text x="{lx:.1}" y="{ly:.1}" text-anchor="{anchor}"><tspan font-weight="bold">{}</tspan><tspan x="{lx:.1}" dy="14">{}</tspan></text>"##,
            c.criterion.title(),
            esc(&value)
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

/// A number for an axis or a label, short.
fn short(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e4 || v.abs() < 1e-2 {
        format!("{v:.1e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// The plots the run's artifacts allow, as inline SVG.
fn plots(run: &Path) -> Result<String> {
    let mut out = String::from("<h2>Plots</h2>\n");
    // Search progress: best-so-far validation score against seconds into the search.
    let history: SearchHistory = read_json(&run.join(paths::TRIALS))?;
    let mut best = f64::NEG_INFINITY;
    let mut progress = Vec::new();
    let mut trials: Vec<_> = history.trials.iter().collect();
    trials.sort_by(|a, b| a.finished_at_secs.total_cmp(&b.finished_at_secs));
    let mut metric_name = String::new();
    for t in trials {
        if let TrialOutcome::Completed { valid_metric, .. } = &t.outcome {
            metric_name.clone_from(&valid_metric.name);
            let v = valid_metric.value;
            let better = if valid_metric.name == "accuracy" {
                v > best
            } else {
                best == f64::NEG_INFINITY || v < best
            };
            if better {
                best = v;
            }
            progress.push((t.finished_at_secs, best));
        }
    }
    out.push_str(&line_chart(
        "Search progress: best validation score so far",
        "seconds into the search",
        &format!("validation {metric_name}"),
        &[("best so far", progress)],
    ));
    // Learning curves of the final model.
    let model: TrainedModel = read_json(&run.join(paths::MODEL))?;
    let train: Vec<(f64, f64)> = model
        .history
        .iter()
        .map(|e| (e.epoch as f64, e.train_loss))
        .collect();
    let valid: Vec<(f64, f64)> = model
        .history
        .iter()
        .filter_map(|e| e.valid_loss.map(|l| (e.epoch as f64, l)))
        .collect();
    out.push_str(&line_chart(
        "Learning curves of the final model",
        "epoch",
        "loss",
        &[("training loss", train), ("validation loss", valid)],
    ));
    out.push_str(&architecture_svg(&model.architecture));
    // Confusion matrix or residuals on the test split, from the exported model.
    let predictor = autodl_deploy::Predictor::open(run)?;
    let test = autodl_data::read_table(&run.join(paths::TEST_RAW))?;
    let t = predictor.transform();
    let outputs = predictor.outputs(&test)?;
    let y = t.encode_target(test.column(&t.target).context("the test split's target")?)?;
    match &t.target_encoding {
        autodl_artifacts::transform::TargetEncoding::Classes { labels } => {
            let mut counts = vec![vec![0usize; labels.len()]; labels.len()];
            for (i, &truth) in y.iter().enumerate() {
                let p = autodl_artifacts::table::argmax(outputs.row(i));
                counts[truth as usize][p] += 1;
            }
            out.push_str(&confusion_svg(labels, &counts));
        }
        autodl_artifacts::transform::TargetEncoding::Standardized { .. } => {
            let points: Vec<(f64, f64)> = y
                .iter()
                .enumerate()
                .map(|(i, &truth)| {
                    let (p, tr) = (
                        t.decode_regression(outputs.row(i)[0]),
                        t.decode_regression(truth),
                    );
                    (p, tr - p)
                })
                .collect();
            let mut sorted = points.clone();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            out.push_str(&line_chart(
                "Residuals on the test split (true − predicted, by prediction)",
                "predicted",
                "residual",
                &[("residual", sorted)],
            ));
        }
    }
    // Feature importance and the ten criteria.
    let card: Scorecard = read_json(&run.join(paths::CRITERIA))?;
    let mut importance = Vec::new();
    let mut unit = String::new();
    for c in &card.criteria {
        if let Assessment::Measured { details, .. } = &c.assessment {
            for d in details {
                if let Some(col) = d.name.strip_prefix("importance of ") {
                    importance.push((col.to_string(), d.value));
                    unit.clone_from(&d.unit);
                }
            }
        }
    }
    out.push_str(&bar_chart(
        "Permutation importance on the test split",
        &unit,
        &importance,
    ));
    out.push_str("<h3>The ten criteria</h3>");
    out.push_str(&criteria_svg(&card));
    out.push_str("<table><tr><th>criterion</th><th>status</th><th>value</th></tr>");
    for c in &card.criteria {
        let (status, value) = match &c.assessment {
            Assessment::Measured { value, unit, .. } => {
                ("measured", format!("{} {}", short(*value), unit))
            }
            Assessment::NotMeasured { reason } => ("not measured", reason.clone()),
        };
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td class="{}">{status}</td><td>{}</td></tr>"#,
            c.criterion.title(),
            if status == "measured" { "ok" } else { "no" },
            esc(&value)
        );
    }
    out.push_str("</table>\n");
    // Scores on data monitoring has seen (generalizability beyond the test split).
    if let Ok(entries) = std::fs::read_dir(run.join("monitor")) {
        let mut scores: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("score-"))
            })
            .collect();
        scores.sort();
        if !scores.is_empty() {
            out.push_str("<h3>The model on data monitoring has seen</h3><table><tr><th>data</th><th>labelled rows</th><th>metric</th><th>there</th><th>on the test split</th></tr>");
            for p in scores {
                let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p)?)?;
                let name = p.file_stem().unwrap_or_default().to_string_lossy();
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(name.trim_start_matches("score-")),
                    v["rows"],
                    esc(v["metric"].as_str().unwrap_or("")),
                    short(v["value"].as_f64().unwrap_or(f64::NAN)),
                    short(v["test_value"].as_f64().unwrap_or(f64::NAN))
                );
            }
            out.push_str("</table>\n");
        }
    }
    // Monitoring plots written beside the run.
    if let Ok(entries) = std::fs::read_dir(run.join("monitor")) {
        let mut svgs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "svg"))
            .collect();
        svgs.sort();
        for p in svgs {
            let svg = std::fs::read_to_string(&p)?;
            let _ = write!(
                out,
                "<h3>Monitoring: {}</h3><figure>{svg}</figure>",
                esc(&p.file_name().unwrap_or_default().to_string_lossy())
            );
        }
    }
    Ok(out)
}

/// Writes `<run>/report.html` from the run's artifacts; returns its path.
pub fn write(run: &Path) -> Result<PathBuf> {
    let md_path = run.join(paths::REPORT);
    if !md_path.is_file() {
        bail!(
            "{} is not a run directory (no {})",
            run.display(),
            paths::REPORT
        );
    }
    let md = std::fs::read_to_string(&md_path)?;
    let title = md
        .lines()
        .find_map(|l| l.strip_prefix("# "))
        .unwrap_or("autodl run")
        .to_string();
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{}</title>
<style>
body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 14px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
pre {{ background: #f6f6f6; padding: 0.8em; overflow-x: auto; }}
code {{ background: #f3f3f3; padding: 0 3px; }}
figure {{ margin: 1em 0; }}
td.ok {{ color: #1a7f37; }} td.no {{ color: #9a6700; }}
</style></head><body>
{}
{}
</body></html>
"#,
        esc(&title),
        markdown(&md),
        plots(run)?
    );
    let path = run.join("report.html");
    autodl_artifacts::io::write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

/// Renders `html` in headless Chromium: takes a screenshot into `png` and returns the console
/// errors it reported (none for a good report).
pub fn screenshot(html: &Path, png: &Path) -> Result<Vec<String>> {
    let browser = [
        "chromium-headless-shell",
        "chromium",
        "chromium-browser",
        "google-chrome",
    ]
    .into_iter()
    .find(|b| {
        std::process::Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
    .context("no headless Chromium found (scripts/chromium.sh installs it from Debian)")?;
    let html = std::fs::canonicalize(html)?;
    let o = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,12000",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .with_context(|| format!("running {browser}"))?;
    let stderr = String::from_utf8_lossy(&o.stderr);
    if !png.is_file() {
        bail!("{browser} wrote no screenshot: {stderr}");
    }
    Ok(stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Failed to load"))
        .map(str::to_string)
        .collect())
}
