//! Which reservations a set of live attachments keeps: the one liveness rule of host-local's GC,
//! `k3s-sandbox ipam gc` (and `cni gc`'s `--valid`), and the leak counts of `doctor` and `status`.
//!
//! - A live attachment is a container ID with an interface name, or a container ID alone, which
//!   stands for every interface of that container (`--valid ID`, the runtime's pod sandboxes).
//! - A reservation whose holder names an interface is kept by its exact attachment or by its
//!   container ID alone; a legacy holder (the reference's files before v0.8.0 name only the
//!   container) is kept by any live attachment of its container.
//! - A reservation that names no holder (empty, unreadable or malformed) is kept by nobody: it is
//!   dead, and only GC or `ipam release` ever frees it.
//! - Something that is not a regular file under an address's name (a symlink, a directory, a pipe)
//!   is blocked: it reserves its address for nobody, and GC never removes it (it is never followed
//!   or opened either); it has to be removed by hand.

use crate::owner::Owner;

/// What a store holds under an address's name, as GC sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    /// A regular file, and the holder its body names (`None`: it names nobody).
    File(Option<&'a Owner>),
    /// A symlink, directory, pipe or device.
    NotAFile,
}

/// What GC makes of an [`Entry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Held by a live attachment: kept.
    Live,
    /// Held by no live attachment, or by nobody: GC frees it.
    Dead,
    /// Not a regular file: GC never removes it.
    Blocked,
}

/// The fate of `entry` when `keeps` says which holders are live.
pub(crate) fn fate(entry: Entry<'_>, keeps: impl FnOnce(&Owner) -> bool) -> Fate {
    match entry {
        Entry::NotAFile => Fate::Blocked,
        Entry::File(Some(o)) if keeps(o) => Fate::Live,
        Entry::File(_) => Fate::Dead,
    }
}

/// A set of live attachments: (container ID, interface name or `None` for every interface).
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Sorted by container ID (duplicates are harmless).
    list: Vec<(String, Option<String>)>,
}

impl Live {
    pub fn new(mut list: Vec<(String, Option<String>)>) -> Live {
        crate::order::sort_by_dyn(&mut list, &|a, b| a.0.cmp(&b.0));
        Live { list }
    }

    /// No attachment is live.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether the attachment (container `id`, interface `ifname`; `None`: a legacy holder that
    /// names no interface) is live. See the module comment.
    pub fn keeps(&self, id: &str, ifname: Option<&str>) -> bool {
        let from = self.list.partition_point(|(i, _)| i.as_str() < id);
        self.list
            .iter()
            .skip(from)
            .take_while(|(i, _)| i == id)
            .any(|(_, i)| i.is_none() || ifname.is_none() || i.as_deref() == ifname)
    }

    /// Whether a reservation held by `owner` is kept.
    pub fn holds(&self, owner: &Owner) -> bool {
        self.keeps(&owner.id, owner.ifname.as_deref())
    }

    /// What GC makes of `entry` with these live attachments.
    pub fn fate(&self, entry: Entry<'_>) -> Fate {
        fate(entry, |o| self.holds(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(list: &[(&str, Option<&str>)]) -> Live {
        Live::new(
            list.iter()
                .map(|(i, f)| (i.to_string(), f.map(str::to_string)))
                .collect(),
        )
    }

    #[test]
    fn an_id_alone_keeps_every_interface_and_a_legacy_holder_any_attachment() {
        let v = live(&[("def", Some("eth1")), ("abc", None), ("def", Some("eth1"))]);
        assert!(v.keeps("abc", Some("eth0")) && v.keeps("abc", Some("net1")) && v.keeps("abc", None));
        assert!(v.keeps("def", Some("eth1")) && v.keeps("def", None));
        assert!(!v.keeps("def", Some("eth0")));
        assert!(!v.keeps("ab", Some("eth0")) && !v.keeps("abcd", None));
        assert!(!Live::default().keeps("abc", None));
    }

    #[test]
    fn entries_that_name_nobody_are_dead_and_not_files_are_blocked() {
        let v = live(&[("a", Some("eth0"))]);
        let a = Owner::new("a", "eth0");
        let b = Owner::new("b", "eth0");
        assert_eq!(v.fate(Entry::File(Some(&a))), Fate::Live);
        assert_eq!(v.fate(Entry::File(Some(&Owner::legacy("a")))), Fate::Live);
        assert_eq!(v.fate(Entry::File(Some(&b))), Fate::Dead);
        assert_eq!(v.fate(Entry::File(None)), Fate::Dead);
        assert_eq!(v.fate(Entry::NotAFile), Fate::Blocked);
        // Even with everything live, a file naming nobody is dead.
        assert_eq!(fate(Entry::File(None), |_| true), Fate::Dead);
    }
}
