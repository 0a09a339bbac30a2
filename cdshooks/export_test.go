package cdshooks

// FixturesDir is fixturesDir for the external tests (package
// cdshooks_test).
var FixturesDir = fixturesDir
