#define _POSIX_C_SOURCE 200809L
#include <hsa/hsa.h>
#include <stdio.h>
#include <string.h>

static hsa_status_t print_agent(hsa_agent_t agent, void *data) {
  int *index = data;
  char name[64];
  hsa_device_type_t type;
  if (hsa_agent_get_name(agent, name) != HSA_STATUS_SUCCESS) return HSA_STATUS_ERROR;
  if (hsa_agent_get_device_type(agent, &type) != HSA_STATUS_SUCCESS) return HSA_STATUS_ERROR;
  printf("Agent %d\n  Name:                    %s\n  Device Type:             %s\n",
         ++*index, name, type == HSA_DEVICE_TYPE_GPU ? "GPU" : "CPU");
  return HSA_STATUS_SUCCESS;
}

int main(int argc, char **argv) {
  uint16_t major = 0, minor = 0;
  if (hsa_init() != HSA_STATUS_SUCCESS) {
    dprintf(2, "rocminfo: hsa_init failed\n");
    return 1;
  }
  hsa_system_get_version(&major, &minor);
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    printf("rocminfo 1.15.0 (HSA runtime %u.%u)\n", (unsigned)major, (unsigned)minor);
  } else {
    int index = 0;
    printf("HSA System Attributes\n  Runtime Version:         %u.%u\n"
           "  Note:                    sample agents, no GPU is queried\n\nHSA Agents\n",
           (unsigned)major, (unsigned)minor);
    if (hsa_iterate_agents(print_agent, &index) != HSA_STATUS_SUCCESS) return 1;
  }
  hsa_shut_down();
  return 0;
}
