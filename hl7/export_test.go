package hl7

// ProcessCPUSeconds lets the external benchmarks (package hl7_test) report
// messages per CPU-second.
var ProcessCPUSeconds = processCPUSeconds
