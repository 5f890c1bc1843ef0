package recipes

import (
	"os"
	"path/filepath"
	"strings"
)

func mkdirWrite(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

func replaceName(doc, name string) string { return strings.Replace(doc, "NAME", name, 1) }
