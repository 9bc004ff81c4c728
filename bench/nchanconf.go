package main

import _ "embed"

// nchanConf is the Nchan set-up measured beside noticed, built into the
// tool so that a binary copied elsewhere still has it (-nchan-conf gives
// another).
//
//go:embed nchan.conf
var nchanConf []byte
