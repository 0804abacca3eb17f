//! Fuzz target (c) of issue 7: the configuration and segment-id file
//! parsers (`rsm::config`) and the survey answer decoder
//! (`rsm::transport::survey::decode`).
//!
//! Input: `<line> NUL <text>`, or without a NUL the whole input is both.
//! `line` is the appid, node id, fabric and controller name; `text` the
//! config file, segment-id file and survey answer. Checked, besides "no
//! panic": what each parser accepts is valid by its own rules (node ids
//! 0..=63, fabric names of the allowed characters, canonical controller
//! names, ranges inside 32 bits); survey answers re-encode to themselves;
//! `rsm_get_segmentid_range` through the C ABI (reading the text from a
//! file) agrees with `find_segmentid_range`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use librsm_fuzz::{check_rc, fuzz_bug, MemFile};
use rsm::config::{self, ControllerKind, MAX_NODE_ID};
use rsm::transport::survey;
use rsm::RsmError;
use std::ffi::c_char;
use std::sync::OnceLock;

static SEGMENTID_FILE: OnceLock<MemFile> = OnceLock::new();

fn fabric_ok(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= 64
        && f.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

// Irrefutable while `ControllerKind` has only `Shm`.
#[allow(irrefutable_let_patterns)]
fn check_config(c: &config::Config, what: &str) {
    if c.node_id > MAX_NODE_ID
        || !fabric_ok(&c.fabric)
        || c.max_segments == 0
        || c.connect_timeout_ms == 0
    {
        fuzz_bug!("{what} accepted a configuration out of range: {c:?}");
    }
    for (k, ctl) in c.controllers.iter().enumerate() {
        let canon = config::canonical_controller_name(&ctl.name);
        if canon.as_ref().map(|(t, u)| format!("{t}{u}")) != Some(ctl.name.clone())
            || ctl.name == "shm0"
            || ctl.name.starts_with("loopback")
            || c.controllers[..k].iter().any(|o| o.name == ctl.name)
        {
            fuzz_bug!("{what} accepted controller {:?}: {c:?}", ctl.name);
        }
        // Window controllers (issue 8) have no fabric.
        if let ControllerKind::Shm { fabric } = &ctl.kind {
            if !fabric_ok(fabric) {
                fuzz_bug!("{what} accepted controller fabric {fabric:?}");
            }
        }
    }
}

fn one(data: &[u8]) {
    let (line, text) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };
    let line_s = String::from_utf8_lossy(line);
    let text_s = String::from_utf8_lossy(text);

    // The config file, alone and under environment values.
    let parsed = config::parse_file(&text_s);
    if let Ok(c) = &parsed {
        check_config(c, "parse_file");
    }
    if config::resolve(Some(&text_s), None, None) != parsed {
        fuzz_bug!("resolve without environment differs from parse_file");
    }
    match config::resolve(Some(&text_s), Some(&line_s), Some(&line_s)) {
        Ok(c) => {
            check_config(&c, "resolve");
            if c.fabric != line_s {
                fuzz_bug!("resolve: the environment's fabric {line_s:?} did not win: {c:?}");
            }
        }
        Err(msg) if msg.is_empty() => fuzz_bug!("resolve failed without a message"),
        Err(_) => {}
    }

    // Single values.
    if let Ok(n) = config::parse_node_id(&line_s) {
        let t = line_s.trim();
        if n > MAX_NODE_ID || t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            fuzz_bug!("parse_node_id({line_s:?}) = {n}");
        }
    }
    if let Ok(f) = config::parse_fabric(&line_s) {
        if f != line_s || !fabric_ok(&f) {
            fuzz_bug!("parse_fabric({line_s:?}) = {f:?}");
        }
    }
    if let Some((ty, unit)) = config::canonical_controller_name(&line_s) {
        let digits = line_s.bytes().rev().take_while(u8::is_ascii_digit).count();
        let (t, u) = line_s.split_at(line_s.len() - digits);
        let unit_ok = if u.is_empty() {
            unit == 0
        } else {
            u.parse::<u32>() == Ok(unit)
        };
        if ty.is_empty() || ty != t.to_ascii_lowercase() || !unit_ok {
            fuzz_bug!("canonical_controller_name({line_s:?}) = ({ty:?}, {unit})");
        }
    }

    // The segment-id file, directly and through the C ABI.
    let direct = config::find_segmentid_range(&text_s, line);
    match direct {
        Ok((base, len)) => {
            if u64::from(base) + u64::from(len) > 1 << 32 {
                fuzz_bug!("find_segmentid_range: {base:#x}+{len} runs past 32 bits");
            }
        }
        Err(RsmError::BadConf) | Err(RsmError::BadAppid) => {}
        Err(e) => fuzz_bug!("find_segmentid_range returned {e}"),
    }
    if line.len() <= 255 && !line.contains(&0) {
        let file = SEGMENTID_FILE.get().expect("initialised");
        file.set(text);
        let mut appid = line.to_vec();
        appid.push(0);
        let (mut base, mut len) = (0u32, 0u32);
        // SAFETY: a C string and our own out-pointers.
        let rc = unsafe {
            rsm::abi::segmentid::rsm_get_segmentid_range(
                appid.as_ptr() as *const c_char,
                &mut base,
                &mut len,
            )
        };
        check_rc("rsm_get_segmentid_range", rc, &line_s);
        let via_abi = if rc == 0 { Ok((base, len)) } else { Err(rc) };
        if via_abi != direct.map_err(|e| e.code()) {
            fuzz_bug!("rsm_get_segmentid_range({line_s:?}) = {via_abi:?}, find_segmentid_range = {direct:?}");
        }
    }

    // A survey answer.
    if let Some(answer) = survey::decode(&text_s) {
        let again = survey::encode(answer.as_ref());
        let back = survey::decode(&again);
        if back.as_ref() != Some(&answer) {
            fuzz_bug!("survey answer {text_s:?} -> {answer:?} -> {again:?} -> {back:?}");
        }
    }
}

fuzz_target!(
    init: {
        librsm_fuzz::isolate("config");
        let f = MemFile::new(b"");
        // SAFETY (set_var): init, single-threaded.
        std::env::set_var("RSM_SEGMENTID_FILE", &f.path);
        let _ = SEGMENTID_FILE.set(f);
    },
    |data: &[u8]| one(data)
);
