/* The do-nothing program the benchmark uses as the cost of one bare process start. */
int main(void) { return 0; }
