# The ingestion host: Amazon Linux 2023, bootstrapped by
# bootstrap/user-data.sh, reachable over SSH with var.public_key.

locals {
  ssh_user = "ec2-user"
  ami_id   = var.ami_id != null ? var.ami_id : nonsensitive(data.aws_ssm_parameter.al2023[0].value)
}

data "aws_ssm_parameter" "al2023" {
  count = var.ami_id == null ? 1 : 0
  name  = var.ami_ssm_parameter
}

resource "aws_key_pair" "host" {
  key_name   = "${var.project}-host"
  public_key = trimspace(var.public_key)
}

resource "aws_instance" "host" {
  ami                    = local.ami_id
  instance_type          = var.instance_type
  subnet_id              = aws_subnet.public.id
  vpc_security_group_ids = [aws_security_group.host.id]
  # The public address comes from the subnet (map_public_ip_on_launch).
  key_name             = aws_key_pair.host.key_name
  iam_instance_profile = aws_iam_instance_profile.runner.name
  monitoring           = var.detailed_monitoring
  ebs_optimized        = true

  user_data = templatefile("${path.module}/../bootstrap/user-data.sh", {
    repo_url = var.repo_url
    ssh_user = local.ssh_user
  })
  user_data_replace_on_change = true

  # IMDSv2 only. Hop limit 2 so containers on the host (one extra network
  # hop through the Docker bridge) can still reach the instance role.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_gib
    encrypted             = true
    delete_on_termination = true
  }

  tags = {
    Name = "${var.project}-host"
  }

  lifecycle {
    # A newer AL2023 AMI must not replace a running host on the next plan;
    # pass ami_id (or taint the instance) to move to a new image.
    ignore_changes = [ami]
  }
}
