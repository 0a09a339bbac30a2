//go:build !unix

package hl7

func processCPUSeconds() float64 { return 0 }
