//! `rsm_get_segmentid_range` (spec 4.3): an application's reserved range of
//! segment ids, from the administrator's file.

use crate::config;
use crate::error::RsmResult;

/// The range `[base, base + length)` reserved for `appid`.
pub fn range(appid: &[u8]) -> RsmResult<(u32, u32)> {
    let text = config::read_segmentid_file()?;
    config::find_segmentid_range(&text, appid)
}
