//! safeshift-ops (work in progress).
