//! Integration tests: the real `rundbrev` binary in a temporary folder.
