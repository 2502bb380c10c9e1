//! bpfconf-runner: how we compare and report. PLACEHOLDER: being written.
