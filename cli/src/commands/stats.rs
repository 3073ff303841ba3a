//! Getting figures and records out of the store: the anonymous statistics for the city and
//! funders (`stats`: tables, JSON, CSV or an SVG chart) and the contact export (`export`: CSV, the
//! confidential notes only with `--include-notes`).

use serde_json::json;
use streetsync_core::ContactExport;
use streetsync_core::StatsQuery;

use crate::args::{ExportArgs, StatsArgs};
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::output::{self, print_stats};

/// `streetsync stats`: anonymous statistics as tables, JSON, CSV or an SVG chart.
pub(super) fn run(ctx: &Context, a: StatsArgs) -> CliResult<()> {
    let q = StatsQuery {
        from: a.from,
        to: a.to,
    };
    q.validate().map_err(streetsync_core::Error::from)?;
    if let Some(svg) = &a.svg
        && svg.is_dir()
    {
        return Err(CliError::invalid(format!(
            "--svg {} is a folder; give a file name",
            svg.display()
        )));
    }
    let ws = ctx.open(false)?;
    let s = ws.statistics(&q)?;
    let mut wrote = Vec::new();
    if let Some(svg) = &a.svg {
        crate::chart::draw(&s, svg)?;
        wrote.push(svg.display().to_string());
    }
    match &a.csv {
        Some(None) => {
            streetsync_core::write_statistics(&s, std::io::stdout().lock())?;
            return Ok(());
        }
        Some(Some(path)) => {
            let file = std::fs::File::create(path)
                .map_err(|e| CliError::invalid(format!("cannot write {}: {e}", path.display())))?;
            streetsync_core::write_statistics(&s, file)?;
            wrote.push(path.display().to_string());
        }
        None => {}
    }
    if ctx.global.json {
        return output::json(&s);
    }
    print_stats(&s);
    for w in wrote {
        println!("\nWrote {w}");
    }
    Ok(())
}

/// `streetsync export`: the contacts as CSV, to a file (written whole or not at all) or stdout.
pub(super) fn export(ctx: &Context, a: ExportArgs) -> CliResult<()> {
    if let (Some(f), Some(t)) = (a.from, a.to)
        && t < f
    {
        return Err(CliError::invalid(format!("--to {t} is before --from {f}")));
    }
    let ws = ctx.open(false)?;
    let spec = ContactExport {
        from: a.from,
        to: a.to,
        include_notes: a.include_notes,
    };
    let to_stdout = a.out.as_os_str() == "-";
    let bar = output::progress(ctx.global.json || to_stdout, "export");
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let n = if to_stdout {
        ws.export_contacts(&spec, std::io::stdout().lock(), &mut progress)?
    } else {
        // Write to a temporary file next to the target, then rename: no half-written export.
        let dir = a
            .out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| CliError::invalid(format!("cannot write into {}: {e}", dir.display())))?;
        let n = ws.export_contacts(&spec, &tmp, &mut progress)?;
        tmp.persist(&a.out).map_err(|e| {
            CliError::invalid(format!("cannot write {}: {}", a.out.display(), e.error))
        })?;
        n
    };
    bar.finish_and_clear();
    if to_stdout {
        return Ok(());
    }
    if ctx.global.json {
        return output::json(&json!({ "file": a.out, "contacts": n, "notes": a.include_notes }));
    }
    println!(
        "Exported {n} contact(s) to {}{}",
        a.out.display(),
        if a.include_notes {
            " WITH confidential notes: keep this file within the team"
        } else {
            " (without notes)"
        }
    );
    Ok(())
}
