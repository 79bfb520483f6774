//! What the commands that run workflows share: the config, the store and the
//! registry bound to the configured backends.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::config::{Backends, Config};
use crate::store::sled::SledStore;

/// `--config`, set once by the command line.
static CONFIG_PATH: OnceLock<Option<PathBuf>> = OnceLock::new();

pub fn set_config_path(path: Option<PathBuf>) {
    let _ = CONFIG_PATH.set(path);
}

/// The config: `--config`, `./sagaflow.toml`, or the defaults.
pub fn config() -> Result<Config, String> {
    Config::find(CONFIG_PATH.get().and_then(|p| p.as_deref())).map_err(|e| e.0)
}

/// The store in `data` and the backends bound to it (the sandbox lives in the same database).
pub fn open(data: &Path) -> Result<(Arc<SledStore>, Backends), String> {
    let config = config()?;
    let store = SledStore::open(data).map_err(|e| e.0)?;
    let backends = Backends::build(&config, Some(&store)).map_err(|e| e.0)?;
    Ok((Arc::new(store), backends))
}
