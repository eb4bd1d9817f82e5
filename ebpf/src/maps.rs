//! The program's maps, opened from their pins (after a fresh load as after a
//! restart: one code path).

use std::path::Path;

use aya::maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray, xdp::DevMap};

use crate::ForwarderError;
use crate::abi::*;

pub(crate) struct Maps {
    pub cfg: Array<MapData, EdgedCfg>,
    pub vips: HashMap<MapData, VipKey, VipVal>,
    pub vipidx: Array<MapData, u32>,
    pub vipinfo: Array<MapData, VipInfo>,
    pub vipst: Array<MapData, VipState>,
    pub poolst: Array<MapData, PoolState>,
    pub ring: Array<MapData, u64>,
    pub proxy: Array<MapData, Proxy>,
    pub pxname: Array<MapData, ProxyName>,
    pub tx: DevMap<MapData>,
    pub ct: Array<MapData, CtBucket>,
    pub vipcnt: PerCpuArray<MapData, VipCountersRaw>,
    pub pxcnt: PerCpuArray<MapData, ProxyCountersRaw>,
    pub glob: PerCpuArray<MapData, u64>,
    pub handoff: Array<MapData, Handoff>,
    pub vipho: Array<MapData, u32>,
    pub owner: HashMap<MapData, u64, u32>,
}

// === impl Maps ===

impl Maps {
    pub fn open(dir: &Path) -> Result<Maps, ForwarderError> {
        Ok(Maps {
            cfg: typed(dir, "ed_cfg")?,
            vips: typed(dir, "ed_vips")?,
            vipidx: typed(dir, "ed_vipidx")?,
            vipinfo: typed(dir, "ed_vipinfo")?,
            vipst: typed(dir, "ed_vipst")?,
            poolst: typed(dir, "ed_poolst")?,
            ring: typed(dir, "ed_ring")?,
            proxy: typed(dir, "ed_proxy")?,
            pxname: typed(dir, "ed_pxname")?,
            tx: typed(dir, "ed_tx")?,
            ct: typed(dir, "ed_ct")?,
            vipcnt: typed(dir, "ed_vipcnt")?,
            pxcnt: typed(dir, "ed_pxcnt")?,
            glob: typed(dir, "ed_glob")?,
            handoff: typed(dir, "ed_handoff")?,
            vipho: typed(dir, "ed_vipho")?,
            owner: typed(dir, "ed_owner")?,
        })
    }

    /// The config the pinned program runs with, if the pin is of our layout.
    pub fn pinned_cfg(dir: &Path) -> Option<EdgedCfg> {
        let cfg: Array<MapData, EdgedCfg> = typed(dir, "ed_cfg").ok()?;
        cfg.get(&0, 0).ok()
    }
}

pub(crate) fn typed<T>(dir: &Path, name: &'static str) -> Result<T, ForwarderError>
where
    T: TryFrom<Map, Error = MapError>,
{
    let err = crate::error::map_err(name, format!("open pin in {}", dir.display()));
    let data = MapData::from_pin(dir.join(name)).map_err(err)?;
    let err = crate::error::map_err(name, "check type and sizes against this build");
    Map::from_map_data(data).and_then(T::try_from).map_err(err)
}
