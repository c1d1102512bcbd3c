package main

import "path/filepath"

// kanikoArgs maps kaniko's image paths onto kiln's commands. kiln's image links
// /kaniko/executor and /kaniko/warmer to the kiln binary (deploy/Dockerfile), so a
// pipeline that runs kaniko's programs by path runs kiln after changing only the image
// name: invoked as executor, kiln runs build (and `executor version` kiln's version),
// invoked as warmer, warm. Any other name leaves args as they are.
func kanikoArgs(argv0 string, args []string) []string {
	switch filepath.Base(argv0) {
	case "executor":
		if len(args) > 0 && args[0] == "version" {
			return args
		}
		return append([]string{"build"}, args...)
	case "warmer":
		return append([]string{"warm"}, args...)
	}
	return args
}
