/* The stand-in for every ROCm command-line program the sample has no dedicated source for
   (hipcc, amd-smi, rocprofv3, rocgdb, ...): one binary, copied or linked to each program's path.
   It answers as the name it is run under (the base name of argv[0]) and always exits 0, also for
   the programs whose real counterpart needs a GPU. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  const char *name = argc > 0 ? argv[0] : "sample-tool";
  const char *slash = strrchr(name, '/');
  if (slash != NULL) name = slash + 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("%s (wheelyard sample program standing in for the ROCm one; it does nothing)\n"
             "usage: %s [--version] [--help]\n",
             name, name);
      return 0;
    }
  }
  printf("%s version 7.10.0 (wheelyard sample program, no GPU queried)\n", name);
  return 0;
}
