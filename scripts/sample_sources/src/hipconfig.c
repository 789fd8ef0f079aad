#include <hip/hip_runtime.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  int v = hipGetVersion();
  char version[32];
  snprintf(version, sizeof version, "%d.%d.%d", v / 10000000, v / 100000 % 100, v % 100000);
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    puts(version);
  } else if (argc > 1 && strcmp(argv[1], "--platform") == 0) {
    puts("amd");
  } else {
    printf("HIP version  : %s\n\n== hipconfig\nHIP_PLATFORM : amd\nHIP_RUNTIME  : rocclr\n"
           "HIP_COMPILER : clang\n", version);
  }
  return 0;
}
