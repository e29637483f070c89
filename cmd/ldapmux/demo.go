package main

import "io"

func demo(args []string, stdout, stderr io.Writer) int { return 1 }
