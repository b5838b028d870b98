//! One sort for every list the store and host-local return.
//!
//! `slice::sort_unstable_by` is generic: each element type it sorts gets its own copy of the sort
//! in the binary. [`sort_by_dyn`] sorts indices through a `&dyn` comparison
//! instead, so the standard sort is instantiated once (for `usize`) whatever the element type;
//! the plugins stay within their size budget. The lists sorted here are short.

/// Sorts `v` by `cmp`, not stably. One instantiation of the standard sort (on indices, through a
/// `&dyn` comparison) serves every element type, which keeps the plugin binaries small; the lists
/// sorted here are short.
pub(crate) fn sort_by_dyn<T>(v: &mut Vec<T>, cmp: &dyn Fn(&T, &T) -> std::cmp::Ordering) {
    let order = sorted_order(v.len(), &|a, b| cmp(&v[a], &v[b]));
    let mut slots: Vec<Option<T>> = v.drain(..).map(Some).collect();
    v.extend(order.into_iter().filter_map(|i| slots[i].take()));
}

/// The indices `0..n` ordered by `cmp`.
fn sorted_order(n: usize, cmp: &dyn Fn(usize, usize) -> std::cmp::Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| cmp(a, b));
    order
}
