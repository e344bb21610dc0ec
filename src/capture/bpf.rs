//! Capture filters: a pcap-filter expression compiled to classic BPF without libpcap.
//! (Being written: see the capture issue.)
