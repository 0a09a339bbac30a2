//go:build !unix

package hl7store

func processCPUSeconds() float64 { return 0 }
