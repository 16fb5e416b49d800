//! The operator's local artifacts directory for airgapped nodes, laid out
//! like a K3s release: `VERSION/ASSET` and `VERSION/sha256sum-ARCH.txt`.
//! Finding a node's files and hashing them here; copying them is
//! [`super::upload`]'s job.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// One release asset for one architecture, as found on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalArtifact {
    /// `VERSION/sha256sum-ARCH.txt`.
    pub list: PathBuf,
    /// `VERSION/ASSET` (`k3s`, `k3s-arm64`, `k3s-armhf`).
    pub binary: PathBuf,
    /// The asset's file name, as the list names it.
    pub asset: String,
    /// The hash the list gives for the asset.
    pub listed: String,
    /// Size of the binary in bytes.
    pub len: u64,
}

/// `~/x` → `$HOME/x`, as a shell would for plan paths.
pub fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

/// The hash `list` (a `sha256sum-ARCH.txt`) gives for `asset`.
pub fn listed_hash<'a>(list: &'a str, asset: &str) -> Option<&'a str> {
    list.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let hash = f.next()?;
        (f.next()?.trim_start_matches('*') == asset).then_some(hash)
    })
}

/// The files of `version` for `arch`/`asset` under `dir`, with the hash
/// their list gives; an error names the missing or unreadable file.
pub fn locate(dir: &Path, version: &str, arch: &str, asset: &str) -> Result<LocalArtifact, String> {
    let base = expand_home(dir).join(version);
    let list = base.join(format!("sha256sum-{arch}.txt"));
    let binary = base.join(asset);
    let text = std::fs::read_to_string(&list)
        .map_err(|e| format!("cannot read {} on this machine: {e}", list.display()))?;
    let listed = listed_hash(&text, asset)
        .ok_or_else(|| format!("{} lists no {asset}", list.display()))?
        .to_string();
    let len = std::fs::metadata(&binary)
        .map_err(|e| format!("cannot read {} on this machine: {e}", binary.display()))?
        .len();
    Ok(LocalArtifact {
        list,
        binary,
        asset: asset.to_string(),
        listed,
        len,
    })
}

/// The sha256 of a file, read in chunks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

impl LocalArtifact {
    /// The binary's hash here matches its list: a corrupted or mixed-up
    /// file is refused before anything is copied.
    pub fn verify(&self) -> Result<(), String> {
        let got = sha256_file(&self.binary)
            .map_err(|e| format!("cannot read {}: {e}", self.binary.display()))?;
        if got == self.listed {
            return Ok(());
        }
        Err(format!(
            "{} has sha256 {got}, but {} lists {}: the artifact is corrupted or from another release",
            self.binary.display(),
            self.list.display(),
            self.listed
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_hashes_and_verifies_a_release_directory() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("v1.34.3+k3s1");
        std::fs::create_dir_all(&v).unwrap();
        std::fs::write(v.join("k3s-arm64"), b"arm binary").unwrap();
        let hash = sha256_file(&v.join("k3s-arm64")).unwrap();
        // sha256sum's binary-mode marker `*` is accepted.
        std::fs::write(
            v.join("sha256sum-arm64.txt"),
            format!("{hash} *k3s-arm64\nabc  k3s-images.txt\n"),
        )
        .unwrap();
        let a = locate(dir.path(), "v1.34.3+k3s1", "arm64", "k3s-arm64").unwrap();
        assert_eq!((a.listed.as_str(), a.len), (hash.as_str(), 10));
        assert_eq!(a.verify(), Ok(()));
        std::fs::write(v.join("k3s-arm64"), b"arm binarY").unwrap();
        let why = a.verify().unwrap_err();
        assert!(why.contains("the artifact is corrupted"), "{why}");
        let why = locate(dir.path(), "v1.34.3+k3s1", "amd64", "k3s").unwrap_err();
        assert!(why.contains("sha256sum-amd64.txt on this machine"), "{why}");
        std::fs::write(v.join("abc"), b"abc").unwrap();
        assert_eq!(
            sha256_file(&v.join("abc")).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
