//! Replicas that edit concurrently and merge in any order converge, and no concurrent text insert
//! is lost: the merge properties the whole product rests on, checked on real stores.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use proptest::prelude::*;
use streetsync_core::*;

#[derive(Debug, Clone)]
enum Op {
    /// Insert a unique marker into the note at a fraction of its length.
    InsertNote { at: f64 },
    /// Hand out `n` more of a material (a counter: concurrent bumps add up).
    Bump { n: i64 },
    /// Change the number of persons (last writer wins, but all replicas agree).
    Persons { n: i64 },
    /// Add a review remark (a list with stable keys).
    Comment,
    /// Merge replica `from` into this replica.
    MergeFrom { from: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0.0f64..=1.0).prop_map(|at| Op::InsertNote { at }),
        2 => (1i64..5).prop_map(|n| Op::Bump { n }),
        1 => (1i64..9).prop_map(|n| Op::Persons { n }),
        1 => Just(Op::Comment),
        3 => (0usize..5).prop_map(|from| Op::MergeFrom { from }),
    ]
}

fn merge(into: &Workspace, from: &Workspace, id: RecordId) {
    into.apply_remote(id, &from.export_document(id).unwrap())
        .unwrap();
}

fn run(replicas: usize, ops: Vec<(usize, Op)>, final_order: Vec<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let lead = lead_store(dir.path());
    let team_doc = lead.team().unwrap();
    let mut first = ContactDraft::new(
        chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        chrono::NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
        "stadtpark",
    );
    first.note = "Anfang. Ende.".into();
    first.materials = vec![MaterialCount {
        material_id: "essen".into(),
        count: 1,
    }];
    let c = lead.create_contact(first).unwrap();
    let mut ws = vec![lead];
    for i in 1..replicas {
        let w = Workspace::open(dir.path().join(format!("r{i}.db")), key(1)).unwrap();
        // Hand over the team document and the contact, as a sync would.
        for (id, bytes) in ws[0]
            .pending_outbox(100)
            .unwrap()
            .into_iter()
            .map(|e| (e.doc_id, e.changes))
        {
            w.apply_remote(id, &bytes).unwrap();
        }
        assert_eq!(w.team().unwrap(), team_doc);
        ws.push(w);
    }
    let mut markers = Vec::new();
    let mut bumped = 1;
    for (n, (r, op)) in ops.into_iter().enumerate() {
        let r = r % replicas;
        let w = &ws[r];
        match op {
            Op::InsertNote { at } => {
                let mut f = w.get_contact(c.id).unwrap().fields;
                let chars: Vec<char> = f.note.chars().collect();
                // Insert at a word boundary, so a later edit never splits an earlier marker.
                let bounds: Vec<usize> = (0..=chars.len())
                    .filter(|&i| i == 0 || i == chars.len() || chars[i - 1] == ' ')
                    .collect();
                let pos = bounds[(((bounds.len() - 1) as f64) * at) as usize];
                let marker = format!(" «m{n}ä» ");
                let mut note: String = chars[..pos].iter().collect();
                note.push_str(&marker);
                note.extend(chars[pos..].iter());
                f.note = note;
                w.update_contact(c.id, f).unwrap();
                markers.push(marker.trim().to_owned());
            }
            Op::Bump { n } => {
                let mut f = w.get_contact(c.id).unwrap().fields;
                f.materials[0].count += n;
                w.update_contact(c.id, f).unwrap();
                bumped += n;
            }
            Op::Persons { n } => {
                let mut f = w.get_contact(c.id).unwrap().fields;
                f.persons = n;
                w.update_contact(c.id, f).unwrap();
            }
            Op::Comment => {
                w.comment_contact(c.id, &format!("Anmerkung {n}")).unwrap();
            }
            Op::MergeFrom { from } => {
                let from = from % replicas;
                if from != r {
                    merge(w, &ws[from], c.id);
                }
            }
        }
    }
    // Everyone merges everyone, in the given order, twice (the second pass spreads what the
    // first pass gathered).
    for _ in 0..2 {
        for &a in &final_order {
            for b in 0..replicas {
                let a = a % replicas;
                if a != b {
                    merge(&ws[a], &ws[b], c.id);
                }
            }
        }
    }
    let result = ws[0].get_contact(c.id).unwrap();
    for w in &ws[1..] {
        assert_eq!(w.get_contact(c.id).unwrap(), result, "replicas diverged");
        assert_eq!(
            w.list_contacts(&ContactFilter::default()).unwrap().items,
            ws[0]
                .list_contacts(&ContactFilter::default())
                .unwrap()
                .items,
            "projections diverged"
        );
    }
    for m in &markers {
        assert!(
            result.fields.note.contains(m.as_str()),
            "insert {m} lost: {}",
            result.fields.note
        );
    }
    // Nothing else was lost or duplicated: without the markers, the original text remains.
    let mut rest = result.fields.note.clone();
    for m in &markers {
        rest = rest.replacen(m.as_str(), "", 1);
    }
    assert_eq!(
        rest.split_whitespace().collect::<Vec<_>>(),
        ["Anfang.", "Ende."]
    );
    assert_eq!(
        result.fields.materials[0].count, bumped,
        "concurrent bumps add up"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn two_replicas_converge(ops in proptest::collection::vec((0usize..2, op()), 1..25), order in Just(vec![0usize, 1])) {
        run(2, ops, order);
    }

    /// Five replicas, random edits, random partial merges (partitions that heal in any order).
    #[test]
    fn five_replicas_with_partitions_converge(
        ops in proptest::collection::vec((0usize..5, op()), 10..45),
        order in Just(vec![0usize, 1, 2, 3, 4]).prop_shuffle(),
    ) {
        run(5, ops, order);
    }

    #[test]
    fn three_replicas_converge_in_any_merge_order(
        ops in proptest::collection::vec((0usize..3, op()), 1..30),
        order in Just(vec![0usize, 1, 2]).prop_shuffle(),
    ) {
        run(3, ops, order);
    }
}
