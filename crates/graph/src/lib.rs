//! safeshift-graph (work in progress).
