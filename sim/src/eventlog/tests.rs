//! Broken input made from the committed real-Spark fixtures: cut, flipped, renamed, stripped.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sparkgang_common::resources::GpuResourceNames;

use super::codec::{Codec, open};
use super::lz4java::block_checksum;
use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/spark-eventlogs")
}

/// The committed log of fixture `name` (see `fixtures/spark-eventlogs/manifest.json`).
fn fixture(name: &str) -> PathBuf {
    let manifest: Value =
        serde_json::from_slice(&fs::read(fixtures().join("manifest.json")).unwrap()).unwrap();
    let entry = manifest["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no fixture {name}"));
    fixtures()
        .join("history")
        .join(entry["path"].as_str().unwrap())
}

fn decode(path: &Path, codec: Option<Codec>) -> (Vec<u8>, Option<std::io::Error>) {
    let mut r = open(path, codec).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e)),
        }
    }
}

fn single(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

fn read_one(dir: &Path) -> EventLogs {
    read_dir(dir).unwrap()
}

const CODECS: [(&str, Codec); 4] = [
    ("zstd", Codec::Zstd),
    ("lz4", Codec::Lz4),
    ("snappy", Codec::Snappy),
    ("lzf", Codec::Lzf),
];

#[test]
fn every_codec_fixture_decodes_to_json_lines_without_error() {
    for (name, codec) in CODECS {
        let (text, err) = decode(&fixture(name), Some(codec));
        assert!(err.is_none(), "{name}: {err:?}");
        assert!(text.ends_with(b"\n"), "{name}");
        let first = text.split(|&b| b == b'\n').next().unwrap();
        assert!(
            first.starts_with(b"{\"Event\":\"SparkListenerLogStart\""),
            "{name}: {}",
            String::from_utf8_lossy(&first[..first.len().min(80)])
        );
    }
}

#[test]
fn lz4_checksum_is_lz4_javas_masked_xxh32() {
    // The first block header of the real lz4 fixture carries the checksum of its content.
    let raw = fs::read(fixture("lz4")).unwrap();
    let clen = i32::from_le_bytes(raw[9..13].try_into().unwrap()) as usize;
    let dlen = i32::from_le_bytes(raw[13..17].try_into().unwrap()) as usize;
    let check = u32::from_le_bytes(raw[17..21].try_into().unwrap());
    let mut out = vec![0; dlen];
    lz4_flex::block::decompress_into(&raw[21..21 + clen], &mut out).unwrap();
    assert_eq!(block_checksum(&out), check);
    assert_ne!(block_checksum(&out[1..]), check);
}

/// Cutting a compressed file anywhere gives a prefix of its content, and an error unless the
/// cut falls on a block boundary.
#[test]
fn cut_compressed_files_decode_to_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    for (name, codec) in CODECS {
        let raw = fs::read(fixture(name)).unwrap();
        let (full, _) = decode(&fixture(name), Some(codec));
        let mut saw_error = false;
        for k in 1..=13 {
            let cut = raw.len() * k / 14;
            let p = single(dir.path(), &format!("cut.{name}"), &raw[..cut]);
            let (part, err) = decode(&p, Some(codec));
            assert!(full.starts_with(&part), "{name} cut at {cut}: not a prefix");
            assert!(part.len() < full.len(), "{name} cut at {cut}: all of it");
            if let Some(e) = err {
                saw_error = true;
                assert!(e.to_string().starts_with(name), "{name}: {e}");
            }
        }
        assert!(saw_error, "{name}: no cut was reported");
    }
}

/// A cut zstd frame keeps its complete blocks (ruzstd alone would hold back a window's worth).
#[test]
fn cut_zstd_frame_keeps_complete_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let raw = fs::read(fixture("zstd")).unwrap();
    let (full, _) = decode(&fixture("zstd"), Some(Codec::Zstd));
    let p = single(dir.path(), "cut.zstd", &raw[..raw.len() - 10]);
    let (part, err) = decode(&p, Some(Codec::Zstd));
    let err = err.expect("a cut frame is reported");
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    assert!(
        part.len() > full.len() / 2,
        "{} of {}",
        part.len(),
        full.len()
    );
}

#[test]
fn flipped_bytes_are_named_by_codec() {
    let dir = tempfile::tempdir().unwrap();
    for (name, codec) in CODECS {
        let mut raw = fs::read(fixture(name)).unwrap();
        let (full, _) = decode(&fixture(name), Some(codec));
        // Flip bytes inside the first block's data, past every header.
        for b in &mut raw[40..48] {
            *b ^= 0x5A;
        }
        let p = single(dir.path(), &format!("flip.{name}"), &raw);
        let (part, err) = decode(&p, Some(codec));
        // Either the codec notices, or (no checksum) the output differs.
        match err {
            Some(e) => assert!(e.to_string().starts_with(name), "{name}: {e}"),
            None => assert_ne!(part, full, "{name}: flip not visible"),
        }
    }
}

#[test]
fn lz4_checksum_mismatch_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = fs::read(fixture("lz4")).unwrap();
    raw[17] ^= 0x01; // the first block's checksum
    let p = single(dir.path(), "x.lz4", &raw);
    let (part, err) = decode(&p, Some(Codec::Lz4));
    assert!(part.is_empty());
    let e = err.unwrap().to_string();
    assert!(e.contains("checksum") && e.contains("block 0"), "{e}");
}

#[test]
fn garbage_file_is_skipped_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let junk: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
    single(dir.path(), "local-1000", &junk);
    single(dir.path(), "local-1001.lz4", &junk);
    single(dir.path(), "local-1002.snappy", &junk);
    single(dir.path(), "local-1003.lzf", &junk);
    single(dir.path(), "local-1004.zstd", &junk);
    single(dir.path(), "local-1005", b"");
    let logs = read_one(dir.path());
    assert!(logs.apps.is_empty(), "{:?}", logs.apps);
    let reasons: Vec<(String, &str)> = logs
        .skipped
        .iter()
        .map(|s| {
            (
                s.source.file_name().unwrap().to_string_lossy().into_owned(),
                s.reason.as_str(),
            )
        })
        .collect();
    let expect = [
        (
            "local-1000",
            "not a Spark event log: local-1000 line 1: not a JSON event",
        ),
        ("local-1001.lz4", "lz4: no LZ4Block magic at byte 0"),
        (
            "local-1002.snappy",
            "snappy: no snappy-java magic at byte 0",
        ),
        ("local-1003.lzf", "lzf: no ZV chunk signature at byte 0"),
        ("local-1004.zstd", "zstd: no zstd magic number at byte 0"),
        ("local-1005", "no events in the log"),
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:?}");
    for ((file, reason), (want_file, want)) in reasons.iter().zip(expect) {
        assert_eq!(file, want_file);
        assert!(reason.contains(want), "{file}: {reason}");
    }
}

#[test]
fn unknown_codec_suffix_and_foreign_directory_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(fixture("zstd"), dir.path().join("local-77.gz")).unwrap();
    fs::create_dir(dir.path().join("app-123")).unwrap();
    fs::write(dir.path().join(".local-77.gz.crc"), b"crc").unwrap();
    let logs = read_one(dir.path());
    assert!(logs.apps.is_empty());
    assert_eq!(logs.skipped.len(), 2, "{:?}", logs.skipped);
    assert!(
        logs.skipped[0]
            .reason
            .contains("is not a rolling event log")
    );
    assert!(
        logs.skipped[1]
            .reason
            .contains("unknown compression codec suffix `.gz` in `local-77.gz`"),
        "{}",
        logs.skipped[1].reason
    );
}

/// The plain fixture with `edit` applied to its lines, written as `name`, read back.
fn edited_plain(name: &str, edit: impl Fn(Vec<&str>) -> Vec<String>) -> (EventLogs, AppTrace) {
    let text = fs::read_to_string(fixture("plain")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let dir = tempfile::tempdir().unwrap();
    let mut out = edit(lines).join("\n");
    if !name.ends_with(".cut") {
        out.push('\n');
    }
    single(dir.path(), name.trim_end_matches(".cut"), out.as_bytes());
    let logs = read_one(dir.path());
    let whole = tempfile::tempdir().unwrap();
    fs::copy(fixture("plain"), whole.path().join("local-1")).unwrap();
    let full = read_one(whole.path()).apps.remove(0);
    assert_eq!(full.name, "fx-plain");
    (logs, full)
}

#[test]
fn truncated_last_line_of_an_inprogress_log_is_dropped_and_said() {
    let (logs, full) = edited_plain("local-5.inprogress.cut", |lines| {
        let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let last = v.len() - 1;
        v[last] = v[last][..v[last].len() / 2].to_owned();
        v
    });
    let app = &logs.apps[0];
    assert_eq!(app.state, TraceState::InProgress);
    assert_eq!(app.events, full.events - 1);
    assert_eq!(app.ended_at_ms, None, "ApplicationEnd was the cut line");
    assert!(
        app.fallbacks
            .iter()
            .any(|f| f.contains("the last line") && f.contains("is cut: dropped")),
        "{:?}",
        app.fallbacks
    );
    assert_eq!(app.demand, full.demand);
}

#[test]
fn log_without_environment_update_uses_defaults_and_says_so() {
    let (logs, full) = edited_plain("local-6", |lines| {
        lines
            .into_iter()
            .filter(|l| !l.contains("SparkListenerEnvironmentUpdate"))
            .map(str::to_owned)
            .collect()
    });
    let app = &logs.apps[0];
    assert_eq!(app.app_id, full.app_id);
    assert_eq!(app.submitted_at_ms, full.started_at_ms.unwrap());
    let defaults = sparkgang_common::sparkconf::SparkConf::default()
        .demand(&GpuResourceNames::default())
        .unwrap();
    assert_eq!(app.demand, defaults);
    for needle in [
        "no SparkListenerEnvironmentUpdate",
        "no spark.app.submitTime: submission = application start",
    ] {
        assert!(
            app.fallbacks.iter().any(|f| f.contains(needle)),
            "{needle}: {:?}",
            app.fallbacks
        );
    }
}

#[test]
fn log_without_start_or_environment_is_skipped() {
    let (logs, _) = edited_plain("local-7", |lines| {
        lines
            .into_iter()
            .filter(|l| !l.contains("EnvironmentUpdate") && !l.contains("ApplicationStart"))
            .map(str::to_owned)
            .collect()
    });
    assert!(logs.apps.is_empty());
    assert!(
        logs.skipped[0].reason.contains("submission time unknown"),
        "{}",
        logs.skipped[0].reason
    );
}

#[test]
fn invalid_conf_value_falls_back_to_sparks_default_for_that_key() {
    let (logs, full) = edited_plain("local-8", |lines| {
        lines
            .into_iter()
            .map(|l| {
                l.replace(
                    "\"spark.executor.memory\":\"3g\"",
                    "\"spark.executor.memory\":\"lots\"",
                )
            })
            .collect()
    });
    let app = &logs.apps[0];
    assert_eq!(app.demand.demand.executor.memory_bytes, (1024 + 384) << 20);
    assert_eq!(
        app.demand.demand.executor.cpu_milli,
        full.demand.demand.executor.cpu_milli
    );
    assert!(
        app.fallbacks.iter().any(
            |f| f.contains("spark.executor.memory=\"lots\" is not valid") && f.contains("ignored")
        ),
        "{:?}",
        app.fallbacks
    );
}

#[test]
fn garbage_lines_in_the_middle_are_skipped_and_counted() {
    let (logs, full) = edited_plain("local-9", |lines| {
        let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        v.insert(5, "\u{1}\u{2}not json".to_owned());
        v.insert(
            9,
            "{\"Event\":\"SparkListenerExecutorAdded\",\"Timestamp\":\"soon\"}".to_owned(),
        );
        v
    });
    let app = &logs.apps[0];
    assert_eq!(app.events, full.events);
    assert!(
        app.fallbacks
            .iter()
            .any(|f| f.starts_with("2 line(s) were not events") && f.contains("line 6")),
        "{:?}",
        app.fallbacks
    );
}

#[test]
fn completed_and_inprogress_copies_of_one_app_keep_the_completed() {
    let dir = tempfile::tempdir().unwrap();
    let plain = fixture("plain");
    let name = plain.file_name().unwrap().to_string_lossy().into_owned();
    fs::copy(&plain, dir.path().join(&name)).unwrap();
    fs::copy(&plain, dir.path().join(format!("{name}.inprogress"))).unwrap();
    let logs = read_one(dir.path());
    assert_eq!(logs.apps.len(), 1);
    assert_eq!(logs.apps[0].state, TraceState::Completed);
    assert_eq!(logs.skipped.len(), 1);
    assert!(
        logs.skipped[0]
            .reason
            .contains("another log of application")
    );
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn rolling_without_appstatus_or_with_a_missing_part() {
    let rolling = fixture("rolling");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(rolling.file_name().unwrap());
    copy_dir(&rolling, &copy);
    let files: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = fs::read_dir(&copy)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    for f in &files {
        let n = f.file_name().unwrap().to_string_lossy();
        if n.starts_with("appstatus_") || n.starts_with("events_2_") {
            fs::remove_file(f).unwrap();
        }
    }
    let logs = read_one(dir.path());
    let app = &logs.apps[0];
    assert_eq!(app.state, TraceState::InProgress);
    for needle in ["no `appstatus_", "events_2…events_2 are missing"] {
        assert!(
            app.fallbacks.iter().any(|f| f.contains(needle)),
            "{needle}: {:?}",
            app.fallbacks
        );
    }
}

#[test]
fn rolling_directory_without_event_files_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("eventlog_v2_local-42");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("appstatus_local-42.inprogress"), b"").unwrap();
    let logs = read_one(dir.path());
    assert!(logs.apps.is_empty());
    assert!(
        logs.skipped[0]
            .reason
            .contains("holds no `events_<N>_<app>` file")
    );
}

#[test]
fn corrupt_block_in_a_completed_log_keeps_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = fs::read(fixture("snappy")).unwrap();
    let at = raw.len() * 3 / 4;
    for b in &mut raw[at..at + 64] {
        *b = 0xFF;
    }
    let name = fixture("snappy")
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    single(dir.path(), &name, &raw);
    let logs = read_one(dir.path());
    assert_eq!(logs.apps.len(), 1, "{:?}", logs.skipped);
    let app = &logs.apps[0];
    assert_eq!(app.state, TraceState::Completed);
    assert!(
        app.fallbacks
            .iter()
            .any(|f| f.contains("snappy: chunk") && f.contains("events read before it")),
        "{:?}",
        app.fallbacks
    );
}

#[test]
fn single_names_follow_sparks_rules() {
    use super::discover::parse_single_name;
    assert_eq!(
        parse_single_name("local-1"),
        Ok(("local-1".into(), None, false))
    );
    assert_eq!(
        parse_single_name("app-2_1.lz4.inprogress"),
        Ok(("app-2_1".into(), Some(Codec::Lz4), true))
    );
    assert_eq!(
        parse_single_name("spark-abc.zstd"),
        Ok(("spark-abc".into(), Some(Codec::Zstd), false))
    );
    assert!(parse_single_name("x.gz").unwrap_err().contains("`.gz`"));
}
