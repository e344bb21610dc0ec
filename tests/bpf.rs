//! Capture filters: plcprobe's BPF compiler against libpcap's (being written).
