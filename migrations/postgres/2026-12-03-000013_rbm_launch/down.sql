DROP TABLE rbm_launch_states;
