//! Writes the three public headers from the Rust definitions with cbindgen.
//!
//! Solaris splits the API over `<sys/rsm/rsm_common.h>`,
//! `<sys/rsm/rsmapi_common.h>` and `<rsmapi.h>`; programs include any of them,
//! so each item must live in the same header as on Solaris. cbindgen writes
//! one header per run, so this runs it three times over the same crate, each
//! time keeping only that header's items (spec section 2-3 say which).
//!
//! Usage: `gen-headers <crate dir> <include dir>`; `make headers` runs it.

use std::path::{Path, PathBuf};

/// Items of `<sys/rsm/rsm_common.h>`.
const RSM_COMMON: &[&str] = &[
    "uint_t",
    "ulong_t",
    "uchar_t",
    "offset_t",
    "rsm_addr_t",
    "rsm_node_id_t",
    "rsm_memseg_id_t",
    "rsm_permission_t",
    "__rsm_memseg_import_handle",
    "__rsm_memseg_export_handle",
    "rsm_memseg_import_handle_t",
    "rsm_memseg_export_handle_t",
    "rsm_access_size_t",
    "rsm_barrier_type_t",
    "rsm_barrier_mode_t",
    "rsm_barrier_component_t",
    "rsm_barrier_t",
    "RSM_VERSION",
    "RSM_SUCCESS",
    "RSM_DRIVER_PRIVATE_ID_BASE",
    "RSM_DRIVER_PRIVATE_ID_END",
    "RSM_CLUSTER_TRANSPORT_ID_BASE",
    "RSM_CLUSTER_TRANSPORT_ID_END",
    "RSM_RSMLIB_ID_BASE",
    "RSM_RSMLIB_ID_END",
    "RSM_DLPI_ID_BASE",
    "RSM_DLPI_ID_END",
    "RSM_HPC_ID_BASE",
    "RSM_HPC_ID_END",
    "RSM_OPS_ID_BASE",
    "RSM_OPS_ID_END",
    "RSM_USER_APP_ID_BASE",
    "RSM_USER_APP_ID_END",
    "RSM_PERM_NONE",
    "RSM_PERM_READ",
    "RSM_PERM_WRITE",
    "RSM_PERM_RDWR",
    "RSM_MAX_SGIOREQS",
];

/// Items of `<sys/rsm/rsmapi_common.h>`.
const RSMAPI_COMMON: &[&str] = &[
    "__rsm_localmemory_handle",
    "__rsmapi_controller_handle",
    "rsm_localmemory_handle_t",
    "rsmapi_controller_handle_t",
    "rsmapi_controller_attr_t",
    "rsmapi_access_entry_t",
    "rsmapi_barrier_t",
    "rsm_iovec_local_t",
    "rsm_iovec_t",
    "rsm_scat_gath_t",
    "RSM_HANDLE_TYPE",
    "RSM_VA_TYPE",
    "RSM_ALLOW_REBIND",
    "RSM_CREATE_SEG_DONTWAIT",
    "RSM_IMPLICIT_SIGPOST",
    "RSM_SIGPOST_NO_ACCUMULATE",
];

/// Items of `<rsmapi.h>` (plus every function).
const RSMAPI: &[&str] = &[
    "rsm_attribute_t",
    "RSM_CONNECTION_ACTIVE",
    "rsm_topology_hdr",
    "rsm_topology_hdr_t",
    "rsm_connections_hdr",
    "rsm_connections_hdr_t",
    "rsm_remote_cntlr",
    "rsm_remote_cntlr_t",
    "rsm_connection",
    "rsm_connections_t",
    "rsm_topology",
    "rsm_topology_t",
];

/// Defined by hand in the headers (guarded, or from system headers), never
/// by cbindgen; the renamed `_raw` aliases exist only in Rust.
const NEVER: &[&str] = &[
    "caddr_t",
    "MAXNAMELEN",
    "pollfd",
    "nfds_t",
    "rsm_barrier_type_raw",
    "rsm_barrier_mode_raw",
    "rsm_attribute_raw",
];

struct Header {
    path: &'static str,
    guard: &'static str,
    sys_includes: &'static [&'static str],
    includes: &'static [&'static str],
    after_includes: &'static str,
    items: &'static [&'static str],
    functions: bool,
}

const HEADERS: &[Header] = &[
    Header {
        path: "sys/rsm/rsm_common.h",
        guard: "_SYS_RSM_RSM_COMMON_H",
        sys_includes: &["stddef.h", "stdint.h", "sys/types.h"],
        includes: &[],
        // glibc typedefs caddr_t itself under _DEFAULT_SOURCE (and says so
        // with __daddr_t_defined); C99 forbids a second typedef of it.
        after_includes: "#ifndef __daddr_t_defined\ntypedef char *caddr_t;\n#endif",
        items: RSM_COMMON,
        functions: false,
    },
    Header {
        path: "sys/rsm/rsmapi_common.h",
        guard: "_SYS_RSM_RSMAPI_COMMON_H",
        sys_includes: &["sys/rsm/rsm_common.h"],
        includes: &[],
        after_includes: "",
        items: RSMAPI_COMMON,
        functions: false,
    },
    Header {
        path: "rsmapi.h",
        guard: "_RSMAPI_H",
        sys_includes: &[
            "poll.h",
            "sys/param.h",
            "sys/rsm/rsm_common.h",
            "sys/rsm/rsmapi_common.h",
        ],
        includes: &[],
        after_includes: "#ifndef MAXNAMELEN\n#define MAXNAMELEN 256\n#endif",
        items: RSMAPI,
        functions: true,
    },
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: gen-headers <crate dir> <include dir>");
        std::process::exit(2);
    }
    let crate_dir = PathBuf::from(&args[1]);
    let out_dir = PathBuf::from(&args[2]);
    let base = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .unwrap_or_else(|e| die(&format!("cbindgen.toml: {e}")));
    for h in HEADERS {
        write_header(&crate_dir, &out_dir, &base, h);
    }
}

/// The items of a header: its list, and for rsm_common.h every `RSMERR_*`
/// constant defined in types.rs.
fn items_of(h: &Header, rsmerr: &[String]) -> Vec<String> {
    let mut items: Vec<String> = h.items.iter().map(|s| s.to_string()).collect();
    if h.path == HEADERS[0].path {
        items.extend(rsmerr.iter().cloned());
    }
    items
}

/// Names of the `pub const RSMERR_*` in `types.rs`.
fn rsmerr_names(types_rs: &str) -> Vec<String> {
    types_rs
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const RSMERR_"))
        .filter_map(|rest| rest.split(':').next())
        .map(|name| format!("RSMERR_{name}"))
        .collect()
}

/// What cbindgen reads: `src/abi/mod.rs` and the modules it declares, and
/// nothing else, so no internal item of the crate can reach a public header.
fn abi_root(crate_dir: &Path) -> PathBuf {
    crate_dir.join("src/abi/mod.rs")
}

fn write_header(crate_dir: &Path, out_dir: &Path, base: &cbindgen::Config, h: &Header) {
    let types_rs = std::fs::read_to_string(crate_dir.join("src/abi/types.rs"))
        .unwrap_or_else(|e| die(&format!("types.rs: {e}")));
    let rsmerr = rsmerr_names(&types_rs);
    let mut config = base.clone();
    config.include_guard = Some(h.guard.to_string());
    config.sys_includes = h.sys_includes.iter().map(|s| s.to_string()).collect();
    config.includes = h.includes.iter().map(|s| s.to_string()).collect();
    config.after_includes = (!h.after_includes.is_empty()).then(|| h.after_includes.to_string());
    let mut exclude: Vec<String> = NEVER.iter().map(|s| s.to_string()).collect();
    for other in HEADERS.iter().filter(|o| o.path != h.path) {
        exclude.extend(items_of(other, &rsmerr));
    }
    config.export.exclude = exclude;
    config.export.include = items_of(h, &rsmerr);
    if !h.functions {
        use cbindgen::ItemType::*;
        config.export.item_types = vec![
            Constants,
            Globals,
            Enums,
            Structs,
            Unions,
            Typedefs,
            OpaqueItems,
        ];
    }
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(abi_root(crate_dir))
        .generate()
        .unwrap_or_else(|e| die(&format!("{}: {e}", h.path)));
    bindings.write_to_file(out_dir.join(h.path));
}

fn die(msg: &str) -> ! {
    eprintln!("gen-headers: {msg}");
    std::process::exit(1);
}
