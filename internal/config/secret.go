package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// validate checks the service account and resolves its password into
// Password. Messages never include the password.
func (s *ServiceAccount) validate(v *validator, path, dir string) {
	if msg := validateDN(s.BindDN); msg != "" {
		v.add(path+".bind-dn", "%s", msg)
	}
	var set []string
	for _, src := range []struct {
		key   string
		given bool
	}{
		{"password", s.Password != ""},
		{"password-file", s.PasswordFile != ""},
		{"password-env", s.PasswordEnv != ""},
	} {
		if src.given {
			set = append(set, src.key)
		}
	}
	switch len(set) {
	case 0:
		v.add(path, "one of password, password-file or password-env is required")
	case 1:
		s.resolve(v, path, dir)
	default:
		v.add(path, "set only one of password, password-file or password-env (found %s)", strings.Join(set, ", "))
	}
}

// resolve reads the password from its file or environment variable.
func (s *ServiceAccount) resolve(v *validator, path, dir string) {
	switch {
	case s.PasswordFile != "":
		pw, msg := readPasswordFile(s.PasswordFile, dir)
		if msg != "" {
			v.add(path+".password-file", "%s", msg)
		}
		s.Password = Secret(pw)
	case s.PasswordEnv != "":
		pw, ok := os.LookupEnv(s.PasswordEnv)
		switch {
		case !ok:
			v.add(path+".password-env", "environment variable %s is not set", s.PasswordEnv)
		case pw == "":
			v.add(path+".password-env", "environment variable %s is empty", s.PasswordEnv)
		}
		s.Password = Secret(pw)
	}
}

// readPasswordFile reads a password file, relative to dir unless absolute,
// returning the password without trailing newlines or a problem message.
func readPasswordFile(name, dir string) (string, string) {
	if !filepath.IsAbs(name) {
		name = filepath.Join(dir, name)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", "cannot read " + name + ": " + err.Error()
	}
	pw := strings.TrimRight(string(data), "\r\n")
	if pw == "" {
		return "", "file " + name + " is empty"
	}
	return pw, ""
}
