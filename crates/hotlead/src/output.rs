//! Score output: JSON lines, CSV, or readable text.

use std::io::Write;

use chrono::FixedOffset;

use hotlead_core::{Lead, RuleSet, Score};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Text,
}

/// Writes one record per lead in the chosen format.
pub struct ScoreWriter<'w> {
    format: Format,
    groups: Vec<String>,
    offset: FixedOffset,
    csv: Option<csv::Writer<&'w mut dyn Write>>,
    out: Option<&'w mut dyn Write>,
}

impl std::fmt::Debug for ScoreWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScoreWriter")
            .field("format", &self.format)
            .finish()
    }
}

impl<'w> ScoreWriter<'w> {
    pub fn new(format: Format, rules: &RuleSet, out: &'w mut dyn Write) -> anyhow::Result<Self> {
        let groups: Vec<String> = rules.groups.iter().map(|g| g.id.clone()).collect();
        if format == Format::Csv {
            let mut csv = csv::Writer::from_writer(out);
            let mut header = vec!["lead_id", "score", "band", "grade"];
            header.extend(groups.iter().map(String::as_str));
            header.extend(["alerts", "contributions"]);
            csv.write_record(&header)?;
            return Ok(ScoreWriter {
                format,
                groups,
                offset: rules.utc_offset,
                csv: Some(csv),
                out: None,
            });
        }
        Ok(ScoreWriter {
            format,
            groups,
            offset: rules.utc_offset,
            csv: None,
            out: Some(out),
        })
    }

    pub fn write(&mut self, lead: &Lead, score: &Score) -> anyhow::Result<()> {
        if let Some(csv) = &mut self.csv {
            let mut record = vec![
                score.lead_id.clone(),
                score.score.to_string(),
                score.band.to_string(),
                score.grade.clone(),
            ];
            for group in &self.groups {
                let points = score
                    .groups
                    .iter()
                    .find(|g| &g.group == group)
                    .map(|g| g.points)
                    .unwrap_or_default();
                record.push(points.to_string());
            }
            record.push(
                score
                    .alerts
                    .iter()
                    .map(|a| a.alert.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            record.push(
                score
                    .contributions
                    .iter()
                    .map(|c| format!("{}:{}", c.rule, c.points))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            csv.write_record(&record)?;
            return Ok(());
        }
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut *out, score)?;
                writeln!(out)?;
            }
            Format::Text => write_text(out, lead, score, self.offset)?,
            Format::Csv => {}
        }
        Ok(())
    }

    pub fn finish(self) -> anyhow::Result<()> {
        if let Some(mut csv) = self.csv {
            csv.flush()?;
        }
        if let Some(out) = self.out {
            out.flush()?;
        }
        Ok(())
    }
}

/// A readable block per lead: who, score, band, grade, then the reasons.
fn write_text(
    out: &mut dyn Write,
    lead: &Lead,
    score: &Score,
    offset: FixedOffset,
) -> std::io::Result<()> {
    let who: Vec<&str> = ["company", "name", "title"]
        .iter()
        .filter_map(|a| lead.get(a).map(|v| v.raw.as_str()))
        .collect();
    writeln!(
        out,
        "{}  {}  {}  {}  {}",
        score.lead_id,
        score.score,
        score.band.as_str().to_uppercase(),
        score.grade,
        who.join(" / ")
    )?;
    if let Some(reason) = &score.excluded {
        writeln!(out, "    excluded: {reason}")?;
    }
    for contribution in &score.contributions {
        writeln!(out, "    {}", contribution.describe(offset))?;
    }
    if let Some(limit) = &score.band_limit {
        writeln!(
            out,
            "    band {} -> {} by {}",
            limit.from, limit.to, limit.label
        )?;
    }
    for alert in &score.alerts {
        writeln!(
            out,
            "    ALERT {} at {}",
            alert.label,
            alert
                .timestamp
                .with_timezone(&offset)
                .format("%Y-%m-%d %H:%M %:z")
        )?;
    }
    let dropped = score.events.received - score.events.scored;
    if dropped > 0 {
        let e = &score.events;
        writeln!(
            out,
            "    ({dropped} events not scored: {} duplicates, {} bots, {} internal network, {} after the scoring time)",
            e.duplicates, e.bots, e.internal_network, e.future
        )?;
    }
    writeln!(out)
}
