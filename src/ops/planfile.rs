//! Saved plans (`plan --out FILE`): the plan with the inputs it was computed from (TOML hash,
//! resolved digests, live managed values, resourceVersion) and a checksum, so apply can refuse
//! a stale or hand-edited plan. No credential is ever part of a plan.

use crate::model::Plan;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const KIND: &str = "perses-oci-plan";
pub const FORMAT_VERSION: &str = "1.0";

#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("cannot read plan file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write plan file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a perses-oci plan file: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
    #[error("plan file {} was modified after it was written (checksum mismatch); run plan again", path.display())]
    Edited { path: PathBuf },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanFile {
    pub kind: String,
    pub format_version: String,
    pub created: String,
    pub plan: Plan,
    /// sha256 of the serialized `plan`.
    pub checksum: String,
}

fn checksum(plan: &Plan) -> String {
    let bytes = serde_json::to_vec(plan).expect("a plan serializes");
    format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
}

pub fn write(path: &Path, plan: &Plan) -> Result<(), PlanFileError> {
    let file = PlanFile {
        kind: KIND.into(),
        format_version: FORMAT_VERSION.into(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        plan: plan.clone(),
        checksum: checksum(plan),
    };
    let mut text = serde_json::to_string_pretty(&file).expect("a plan file serializes");
    text.push('\n');
    std::fs::write(path, text).map_err(|source| PlanFileError::Write {
        path: path.into(),
        source,
    })
}

pub fn read(path: &Path) -> Result<Plan, PlanFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanFileError::Read {
        path: path.into(),
        source,
    })?;
    let file: PlanFile = serde_json::from_str(&text).map_err(|e| PlanFileError::Malformed {
        path: path.into(),
        message: e.to_string(),
    })?;
    if file.kind != KIND {
        return Err(PlanFileError::Malformed {
            path: path.into(),
            message: format!("kind is {:?}", file.kind),
        });
    }
    if checksum(&file.plan) != file.checksum {
        return Err(PlanFileError::Edited { path: path.into() });
    }
    Ok(file.plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_edit_detection() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plan.json");
        let plan = Plan::default();
        write(&p, &plan).unwrap();
        assert_eq!(read(&p).unwrap(), plan);
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("\"envs\": []", "\"envs\": [ ]");
        std::fs::write(&p, &text).unwrap();
        assert!(read(&p).is_ok(), "whitespace is not an edit");
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["plan"]["envs"] = serde_json::json!([{"env": "x"}]);
        std::fs::write(&p, v.to_string()).unwrap();
        assert!(read(&p).is_err());
    }
}
