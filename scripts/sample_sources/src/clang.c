#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  const char *name = argc > 0 ? argv[0] : "clang";
  const char *slash = strrchr(name, '/');
  if (slash != NULL) name = slash + 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--version") == 0) {
      printf("%s version 20.0.0 (wheelyard sample of AMD LLVM)\n"
             "Target: x86_64-unknown-linux-gnu\nThread model: posix\n", name);
      return 0;
    }
  }
  dprintf(2, "%s: error: no input files\n", name);
  return 1;
}
