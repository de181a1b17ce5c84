/* board_host.c - board.h on a desktop: stdout, no tick counter. Lets main.c run on the host
   with the same model bytes, so its output can be compared with the firmware's. */
#include <stdio.h>
#include <stdlib.h>
#include "board.h"

void board_init(void) {}
void board_putc(char c) { putchar(c); }
uint32_t board_ticks(void) { return 0; }
void board_spin(uint32_t n) { (void)n; }
size_t board_stack_used(void) { return 0; }
void board_exit(int code) { fflush(stdout); exit(code); }
