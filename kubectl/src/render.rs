//! Tables and plain words for the explain API's answers.

use std::fmt::Write;

use sparkgang_common::Resources;
use sparkgang_common::api::explain::{
    AppExplanation, AppSummary, GroupCapacity, NodeCapacity, Reason,
};

/// Columns padded to their widest cell, two spaces apart, as kubectl prints.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}  ");
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn cpu(milli: i64) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

fn memory(bytes: i64) -> String {
    const GI: i64 = 1 << 30;
    const MI: i64 = 1 << 20;
    if bytes % GI == 0 {
        format!("{}Gi", bytes / GI)
    } else if bytes >= GI {
        format!("{:.1}Gi", bytes as f64 / GI as f64)
    } else {
        format!("{}Mi", bytes / MI)
    }
}

/// `cpu/memory[/gpus]` in one cell.
fn short(r: &Resources) -> String {
    let mut s = format!("{}/{}", cpu(r.cpu_milli), memory(r.memory_bytes));
    if r.gpus != 0 {
        let _ = write!(s, "/{}gpu", r.gpus);
    }
    s
}

fn age(submitted: Option<&str>, now: k8s_openapi::jiff::Timestamp) -> String {
    let Some(t) = submitted.and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok()) else {
        return String::new();
    };
    let s = now.duration_since(t).as_secs().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// `kubectl sparkgang apps`.
pub fn apps(items: &[AppSummary], all_namespaces: bool) -> String {
    if items.is_empty() {
        return "No Spark applications found.\n".to_owned();
    }
    let now = k8s_openapi::jiff::Timestamp::now();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|a| {
            let mut row = Vec::new();
            if all_namespaces {
                row.push(a.namespace.clone());
            }
            row.extend([
                a.app_id.clone(),
                a.state.as_str().to_owned(),
                a.instance_group.clone().unwrap_or_else(|| "-".to_owned()),
                a.queue_position
                    .zip(a.queue_length)
                    .map_or_else(|| "-".to_owned(), |(p, n)| format!("{p}/{n}")),
                a.priority.to_string(),
                a.demand.map_or_else(
                    || "unknown".to_owned(),
                    |d| format!("1+{}x{}", d.min_executors, short(&d.executor)),
                ),
                format!(
                    "{}/{}{}",
                    a.executors.bound,
                    a.executors.reserved,
                    if a.executors.soft > 0 {
                        format!("+{}", a.executors.soft)
                    } else {
                        String::new()
                    }
                ),
                age(a.submitted.as_deref(), now),
            ]);
            row
        })
        .collect();
    let mut header = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend([
        "APP",
        "STATE",
        "GROUP",
        "QUEUE",
        "PRIORITY",
        "GANG",
        "EXECUTORS",
        "AGE",
    ]);
    table(&header, &rows)
}

/// `kubectl sparkgang why`: the reason in words, then the figures behind it.
pub fn why(e: &AppExplanation) -> String {
    let a = &e.app;
    let mut out = format!(
        "Application {}/{} (driver {}) is {}.\n\n{}\n",
        a.namespace,
        a.app_id,
        a.driver.as_deref().unwrap_or("gone"),
        a.state.as_str(),
        e.message
    );
    let mut facts: Vec<(String, String)> = Vec::new();
    if let Some(d) = a.demand {
        facts.push((
            "Gang".to_owned(),
            format!(
                "driver {} + {} executors x {} = {}",
                d.driver, d.min_executors, d.executor, d.total
            ),
        ));
    }
    if let (Some(p), Some(n)) = (a.queue_position, a.queue_length) {
        let group = a.instance_group.as_deref().unwrap_or("(none)");
        facts.push((
            "Queue".to_owned(),
            match &a.queue {
                Some(q) => format!("{p} of {n} in queue {q} (instance group {group})"),
                None => format!("{p} of {n} in instance group {group}"),
            },
        ));
    }
    match &e.reason {
        Reason::Capacity { shortfall: s } => {
            facts.push(("Free".to_owned(), s.free.to_string()));
            facts.push(("Short by".to_owned(), s.short.to_string()));
            facts.push((
                "Executors".to_owned(),
                format!(
                    "{} of {} fit beside the driver",
                    s.placeable_executors, s.requested_executors
                ),
            ));
            for z in &s.zones {
                facts.push((
                    format!("Zone {}", z.zone),
                    format!(
                        "{} nodes, free {}, room for {} executors{}",
                        z.nodes,
                        z.free,
                        z.executors_fit,
                        if z.driver_fits {
                            ""
                        } else {
                            ", not the driver"
                        }
                    ),
                ));
            }
        }
        Reason::NeverFits { never_fits: n } => {
            facts.push((
                "Nodes".to_owned(),
                format!(
                    "{} eligible of {} ({} match the selector)",
                    n.eligible, n.nodes, n.matching_selector
                ),
            ));
            facts.push(("Allocatable".to_owned(), n.total_allocatable.to_string()));
            facts.push(("Largest node".to_owned(), n.largest_node.to_string()));
            facts.push((
                "Cause".to_owned(),
                "capacity: the gang never fits".to_owned(),
            ));
        }
        Reason::QueueAtMax { hold }
        | Reason::QueueCohortFull { hold }
        | Reason::QueueUnusable { hold, .. } => {
            if let (Some(r), Some(used), Some(limit), Some(asked)) =
                (&hold.resource, &hold.used, &hold.limit, &hold.asked)
            {
                let of = if matches!(e.reason, Reason::QueueCohortFull { .. }) {
                    "held by its cohort, of the cohort's guarantee"
                } else {
                    "held, of its max"
                };
                facts.push((
                    "Queue limit".to_owned(),
                    format!("{r} {used}/{limit} ({of}); the gang asks {asked}"),
                ));
            }
            facts.push((
                "Cause".to_owned(),
                if hold.never {
                    format!("queue {}: the gang is larger than its max", hold.queue)
                } else {
                    format!("queue {}", hold.queue)
                },
            ));
        }
        Reason::WaitingBehind {
            blocker,
            ahead,
            ahead_count,
        } => {
            facts.push((
                "Blocked by".to_owned(),
                format!(
                    "{} (driver {}, priority {}, pending {}s)",
                    blocker.app_id, blocker.driver, blocker.priority, blocker.pending_seconds
                ),
            ));
            let names: Vec<&str> = ahead.iter().map(|q| q.app_id.as_str()).collect();
            facts.push((
                "Ahead".to_owned(),
                format!("{ahead_count}: {}", names.join(", ")),
            ));
        }
        _ => {}
    }
    if let Some(d) = &e.last_decision {
        facts.push((
            "Last decision".to_owned(),
            format!("{} at {}", d.outcome, d.at),
        ));
    }
    if !e.slots.is_empty() {
        let slots: Vec<String> = e
            .slots
            .iter()
            .map(|s| format!("{}@{}", s.name, s.node))
            .collect();
        facts.push(("Slots".to_owned(), slots.join(" ")));
    }
    if !facts.is_empty() {
        out.push('\n');
        let w = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
        for (k, v) in facts {
            let _ = writeln!(out, "{:<w$} {v}", format!("{k}:"));
        }
    }
    out
}

/// `kubectl sparkgang capacity [GROUP]`.
pub fn capacity(groups: &[GroupCapacity]) -> String {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                if g.name.is_empty() {
                    "(none)".to_owned()
                } else {
                    g.name.clone()
                },
                g.nodes.to_string(),
                short(&g.allocatable),
                short(&g.allocated),
                short(&g.reserved),
                short(&g.free),
                format!("{:.0}%", g.cpu_used * 100.0),
                g.queue.len().to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "GROUP",
            "NODES",
            "ALLOCATABLE",
            "ALLOCATED",
            "RESERVED",
            "FREE",
            "CPU USED",
            "PENDING",
        ],
        &rows,
    );
    for g in groups {
        if let Some(nodes) = &g.node_list {
            out.push('\n');
            out.push_str(&node_table(nodes));
        }
        if !g.queue.is_empty() {
            let _ = write!(
                out,
                "\nQueue of {}:\n",
                if g.name.is_empty() { "(none)" } else { &g.name }
            );
            for (i, q) in g.queue.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "  {}. {} (driver {}, priority {}, pending {}s)",
                    i + 1,
                    q.app_id,
                    q.driver,
                    q.priority,
                    q.pending_seconds
                );
            }
        }
    }
    out
}

fn node_table(nodes: &[NodeCapacity]) -> String {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.zone.clone(),
                if n.ready && !n.unschedulable {
                    "yes".to_owned()
                } else {
                    "no".to_owned()
                },
                short(&n.allocatable),
                short(&n.allocated),
                short(&n.reserved),
                short(&n.free),
            ]
        })
        .collect();
    table(
        &[
            "NODE",
            "ZONE",
            "SCHEDULABLE",
            "ALLOCATABLE",
            "ALLOCATED",
            "RESERVED",
            "FREE",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_every_column_but_the_last() {
        let t = table(
            &["A", "LONGER"],
            &[vec!["wide-cell".to_owned(), "x".to_owned()]],
        );
        assert_eq!(t, "A          LONGER\nwide-cell  x\n");
    }

    #[test]
    fn quantities_read_as_kubectl_writes_them() {
        assert_eq!(cpu(4000), "4");
        assert_eq!(cpu(1500), "1500m");
        assert_eq!(memory(4 << 30), "4Gi");
        assert_eq!(memory(1536 << 20), "1.5Gi");
        assert_eq!(memory(512 << 20), "512Mi");
    }
}
