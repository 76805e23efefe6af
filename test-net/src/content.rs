//! What the nodes share on disk: the catalog's files, each signed by the
//! publisher, and the fakers' fakes.
//!
//! Every genuine file is signed once by the *publisher*, a key made for the
//! run, and every copy has that `FILE.minisig` beside it, as a servent
//! sharing a release does; every node pins the publisher's key. A *faker*
//! is a node that answers the queries of the run with fakes named after
//! them, served by its real servent from real files. For each item the plan
//! asks for, a faker shares three files under the item's exact name, each
//! in a folder of its own so that the names can repeat:
//!
//! - [`FakeKind::CopiedSignature`]: other bytes of the same size, with the
//!   publisher's genuine signature copied beside them (the signature is
//!   real, the content is not: judged `fake`);
//! - [`FakeKind::OwnKey`]: other bytes signed by the faker's own key, with
//!   release metadata that names the item (judged `untrusted`);
//! - [`FakeKind::Unsigned`]: junk without a signature (judged `unsigned`).
//!
//! The keys are random; everything else follows from the plan. The fakes
//! themselves are `servent::fakes`', as `servent demo` makes them.

use std::path::{Path, PathBuf};

use servent::fakes::{self, FakeKind, Genuine};
use servent::trust::TrustedKey;
use signing_tool::{Minisig, ReleaseMeta, SecretKey};

use crate::catalog::{Catalog, Item};
use crate::Error;

/// The keyword every release carries.
pub const KEYWORD: &str = "SEBLINUX";
/// The scope the publisher's key is pinned for: every release name starts with the keyword.
pub const SCOPE: &str = "SEBLINUX*";
/// The time every signature claims, so that signatures differ only by key.
const SIGNED_AT: u64 = 1_700_000_000;

/// A file a node must be able to find in its own index before the run starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// What is typed to find it.
    pub query: String,
    /// Its name.
    pub name: String,
    /// How many files of that name the node shares.
    pub copies: usize,
}

/// What one node shares: its folder, if it shares anything, and the files
/// to wait for.
#[derive(Clone, Debug, Default)]
pub struct NodeShare {
    /// The shared folder.
    pub dir: Option<PathBuf>,
    /// The files in it, by name.
    pub expected: Vec<Expected>,
}

/// The run's keys and signatures, and who fakes what.
pub struct Content {
    publisher: SecretKey,
    /// The publisher's signature of each catalog item, by item.
    signatures: Vec<String>,
    /// The fakers, in increasing order, each with its own key.
    fakers: Vec<(usize, SecretKey)>,
    /// The items the fakers fake: those the plan asks for.
    faked: Vec<usize>,
}

impl Content {
    /// Signs every item of `catalog` with a new publisher key, and gives
    /// each of `fakers` a key of its own to fake the `faked` items with.
    pub fn new(catalog: &Catalog, fakers: &[usize], faked: &[usize]) -> Result<Content, Error> {
        let publisher = new_key()?;
        let signatures = catalog
            .items()
            .iter()
            .map(|item| sign(&publisher, item, &item.contents).map(|m| m.to_text()))
            .collect::<Result<_, _>>()?;
        let fakers = fakers.iter().map(|&node| new_key().map(|key| (node, key))).collect::<Result<_, _>>()?;
        Ok(Content { publisher, signatures, fakers, faked: faked.to_vec() })
    }

    /// The publisher's key as every node pins it.
    pub fn trusted(&self) -> TrustedKey {
        TrustedKey { key: self.publisher.public_key(), scope: vec![SCOPE.into()] }
    }

    /// Writes what `node` shares into a folder of its own under `root`.
    pub fn write_share(&self, catalog: &Catalog, root: &Path, node: usize) -> Result<NodeShare, Error> {
        let dir = root.join(format!("node-{node}"));
        if let Ok(at) = self.fakers.binary_search_by_key(&node, |(n, _)| *n) {
            let key = &self.fakers[at].1;
            let mut expected = Vec::with_capacity(self.faked.len());
            for &index in &self.faked {
                let item = &catalog.items()[index];
                let meta = meta(item);
                let genuine = Genuine {
                    file: &item.name,
                    bytes: &item.contents,
                    signature: &self.signatures[index],
                    meta: &meta,
                };
                for kind in FakeKind::ALL {
                    let fake = fakes::fake(&genuine, kind, &format!("node {node}"), key, SIGNED_AT)
                        .map_err(|e| Error::Sign(format!("{}: {e}", item.name)))?;
                    write_file(&dir.join(kind.folder()), &item.name, &fake.bytes, fake.signature.as_deref())?;
                }
                expected.push(Expected { query: item.query.clone(), name: item.name.clone(), copies: 3 });
            }
            return Ok(NodeShare { dir: Some(dir), expected });
        }
        let items = catalog.shared_by(node);
        if items.is_empty() {
            return Ok(NodeShare::default());
        }
        let mut expected = Vec::with_capacity(items.len());
        for &index in items {
            let item = &catalog.items()[index];
            write_file(&dir, &item.name, &item.contents, Some(&self.signatures[index]))?;
            expected.push(Expected { query: item.query.clone(), name: item.name.clone(), copies: 1 });
        }
        Ok(NodeShare { dir: Some(dir), expected })
    }
}

fn new_key() -> Result<SecretKey, Error> {
    SecretKey::generate().map_err(|e| Error::Sign(format!("cannot make a key: {e}")))
}

/// The release `item` is signed as.
fn meta(item: &Item) -> ReleaseMeta {
    let release = item.name.strip_suffix(".tar").unwrap_or(&item.name);
    let (name, version) = release.rsplit_once('-').unwrap_or((release, "1.0"));
    ReleaseMeta { name: name.into(), version: version.into(), keywords: vec![KEYWORD.into()] }
}

/// A release signature of `bytes` as `item`, by `key`.
fn sign(key: &SecretKey, item: &Item, bytes: &[u8]) -> Result<Minisig, Error> {
    fakes::sign_release(key, &item.name, bytes, &meta(item), SIGNED_AT)
        .map_err(|e| Error::Sign(format!("{}: {e}", item.name)))
}

/// Writes `dir/name`, and `dir/name.minisig` when there is a signature.
fn write_file(dir: &Path, name: &str, bytes: &[u8], signature: Option<&str>) -> Result<(), Error> {
    let failed = |path: PathBuf| move |source| Error::Files { path, source };
    std::fs::create_dir_all(dir).map_err(failed(dir.to_path_buf()))?;
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(failed(path.clone()))?;
    if let Some(signature) = signature {
        let path = dir.join(format!("{name}.minisig"));
        std::fs::write(&path, signature).map_err(failed(path.clone()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use servent::trust::{Content as Claimed, TrustStore, Verdict};

    use super::*;
    use crate::Distribution;

    fn catalog() -> Catalog {
        let honest: Vec<usize> = (0..10).filter(|&n| n != 3).collect();
        Catalog::generate(12, 10, &honest, 0.2, Distribution::Uniform, &mut StdRng::seed_from_u64(5)).unwrap()
    }

    #[test]
    fn genuine_copies_verify_and_each_fake_earns_its_verdict() {
        let catalog = catalog();
        let content = Content::new(&catalog, &[3], &[0, 5]).unwrap();
        let root = tempfile::tempdir().unwrap();
        let mut trust = TrustStore::in_memory();
        let pinned = content.trusted();
        trust.add(pinned.key, pinned.scope).unwrap();
        let verdict = |path: &Path| {
            let bytes = std::fs::read(path).unwrap();
            let (digests, size) = search::hash_reader(&bytes[..]).unwrap();
            let search::Urn::Sha256(sha256) = digests.sha256_urn() else { unreachable!() };
            let signature = std::fs::read(format!("{}.minisig", path.display())).ok();
            let minisig = signature.map(|s| Minisig::parse(&s).unwrap());
            trust.judge(minisig.as_ref(), Claimed { size, sha256: Some(sha256) }).verdict
        };

        let holder = catalog.items()[0].holders[0];
        let share = content.write_share(&catalog, root.path(), holder).unwrap();
        let dir = share.dir.unwrap();
        assert!(share.expected.iter().all(|e| e.copies == 1));
        for expected in &share.expected {
            assert_eq!(verdict(&dir.join(&expected.name)), Verdict::Verified, "{}", expected.name);
        }

        let share = content.write_share(&catalog, root.path(), 3).unwrap();
        let dir = share.dir.unwrap();
        let names: Vec<&str> = share.expected.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, [catalog.items()[0].name.as_str(), catalog.items()[5].name.as_str()]);
        let name = &catalog.items()[5].name;
        assert_eq!(verdict(&dir.join("copied-signature").join(name)), Verdict::Fake);
        assert_eq!(verdict(&dir.join("own-key").join(name)), Verdict::Untrusted);
        assert_eq!(verdict(&dir.join("unsigned").join(name)), Verdict::Unsigned);
    }
}
