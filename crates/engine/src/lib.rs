//! safeshift-engine (work in progress).
